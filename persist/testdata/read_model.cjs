// An independent reader of saved Penstock models, for TestArrowJSReads:
// Apache Arrow's JavaScript implementation (npm apache-arrow, with the
// zstd codec of npm fzstd registered) and Node's crypto and tar parsing.
//
//   node read_model.cjs <dir with node_modules> <model dir> <model file>
//
// It checks the manifest's own SHA-256 (manifest_sha256, format version 2)
// and every blob's SHA-256 and size against the manifest, reads the
// single file as a tar archive and checks that it holds the same manifest
// and blobs, decodes every tensor, and prints {"<step key>|<tensor>":
// {"dtype", "shape", "values"}} as JSON (int64 values as strings).
const path = require('path');
const fs = require('fs');
const crypto = require('crypto');
const { createRequire } = require('module');
const req = createRequire(path.join(process.argv[2], 'package.json'));
const arrow = req('apache-arrow');
const fzstd = req('fzstd');
// fzstd may return a view at an offset that arrow's typed arrays cannot
// start at: copy into a buffer of its own.
arrow.compressionRegistry.set(arrow.CompressionType.ZSTD, { decode: (b) => Uint8Array.from(fzstd.decompress(b)) });

function sha(b) { return crypto.createHash('sha256').update(b).digest('hex'); }

const dir = process.argv[3];
const manifestText = fs.readFileSync(path.join(dir, 'manifest.json'));
// Format version 2: the manifest ends with "manifest_sha256": "<hex>"\n},
// the SHA-256 of every byte before the value's opening quote.
const tail = manifestText.subarray(manifestText.length - 68).toString('latin1');
const covered = manifestText.subarray(0, manifestText.length - 68);
if (!/^"[0-9a-f]{64}"\n}$/.test(tail) || !covered.toString('latin1').endsWith('"manifest_sha256": ')) throw new Error('the manifest does not end with its checksum');
if (sha(covered) !== tail.slice(1, 65)) throw new Error('manifest checksum mismatch');
const manifest = JSON.parse(manifestText);
if (manifest.format !== 'penstock-model' || manifest.format_version !== 2) throw new Error('format ' + manifest.format + ' version ' + manifest.format_version);
if (manifest.manifest_sha256 !== tail.slice(1, 65)) throw new Error('manifest_sha256 is not the checksum at the end');

// The tar archive: 512-byte headers, name at 0, octal size at 124.
function untar(buf) {
  const out = [];
  for (let off = 0; off + 512 <= buf.length;) {
    const h = buf.subarray(off, off + 512);
    if (h.every((c) => c === 0)) break;
    const name = h.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
    off += 512;
    out.push({ name, data: buf.subarray(off, off + size) });
    off += Math.ceil(size / 512) * 512;
  }
  return out;
}
const members = untar(fs.readFileSync(process.argv[4]));
if (members[0].name !== 'manifest.json' || !members[0].data.equals(manifestText)) throw new Error('the file does not start with the same manifest');
const inFile = new Map(members.slice(1).map((m) => [m.name, m.data]));

const blobs = new Map();
for (const [sum, ref] of Object.entries(manifest.blobs || {})) {
  const data = fs.readFileSync(path.join(dir, ref.path));
  if (data.length !== ref.size) throw new Error(ref.path + ': size ' + data.length);
  if (sha(data) !== sum) throw new Error(ref.path + ': checksum mismatch');
  if (!inFile.has(ref.path) || !inFile.get(ref.path).equals(data)) throw new Error(ref.path + ': not the same in the file');
  blobs.set(sum, data);
}

const out = {};
function visit(node, key) {
  for (const [name, t] of Object.entries(node.tensors || {})) {
    const table = arrow.tableFromIPC(blobs.get(t.blob));
    const field = table.schema.fields[0];
    if (table.schema.fields.length !== 1 || field.name !== name) throw new Error(key + '|' + name + ': schema ' + table.schema);
    if (table.schema.metadata.get('penstock.shape') !== JSON.stringify(t.shape)) throw new Error(key + '|' + name + ': shape metadata');
    const col = table.getChildAt(0);
    const values = [];
    for (let i = 0; i < col.length; i++) {
      const v = col.get(i);
      values.push(typeof v === 'bigint' ? v.toString() : v);
    }
    out[key + '|' + name] = { dtype: t.dtype, shape: t.shape, values };
  }
  for (const c of node.children || []) visit(c, key === '' ? c.name : key + '__' + c.name);
}
visit(manifest.root, '');
process.stdout.write(JSON.stringify(out));
