import { tableFromArrays, tableToIPC, Table, vectorFromArray, FixedSizeList, Float32, Field, makeData, makeVector, RecordBatch, tableFromIPC, Schema, Struct } from 'apache-arrow';
import { writeFileSync, readFileSync } from 'fs';
const n = 10;
const x = Float64Array.from({length: n}, (_, i) => i * 1.5);
const id = BigInt64Array.from({length: n}, (_, i) => BigInt(i));
const label = Int32Array.from({length: n}, (_, i) => i % 3);
const t = tableFromArrays({ x, id, label, name: Array.from({length: n}, (_, i) => 'row' + i) });
writeFileSync(process.argv[2] + '/arrowjs.arrow', tableToIPC(t, 'file'));
writeFileSync(process.argv[2] + '/arrowjs.arrows', tableToIPC(t, 'stream'));
// Read back what Go wrote, if given.
if (process.argv[3]) {
  const back = tableFromIPC(readFileSync(process.argv[3]));
  console.log(back.numRows, back.schema.fields.map(f => f.name + ':' + f.type).join(','), JSON.stringify(back.get(0).toJSON(), (k, v) => typeof v === 'bigint' ? v.toString() : v));
}
