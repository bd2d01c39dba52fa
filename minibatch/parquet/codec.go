package parquet

import (
	"fmt"

	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
)

// arrow-go decompresses a Parquet page into a buffer of the size that the
// page header gives (bounded by pq.DefaultMaxUncompressedPageSize), but
// its Snappy and Zstd codecs allocate the size that the compressed block
// itself claims when it is larger: a page of 40 bytes can ask for 4 GiB
// (Snappy) or any amount (a Zstd frame's content size), which kills the
// process. The codecs registered here refuse such a block before
// allocating; every other call is arrow-go's own. A valid page always
// decodes to exactly its header's size, which arrow-go checks after, so
// valid files read as before.

func init() {
	for _, c := range []struct {
		kind    compress.Compression
		claimed func(src []byte) (uint64, bool, error)
	}{
		{compress.Codecs.Snappy, snappyClaim},
		{compress.Codecs.Zstd, zstdClaim},
	} {
		inner, err := compress.GetCodec(c.kind)
		if err != nil {
			continue // not built in: nothing to bound
		}
		if c.kind == compress.Codecs.Zstd {
			inner = boundedZstd{inner}
		}
		compress.RegisterCodec(c.kind, boundedCodec{Codec: inner, kind: c.kind, claimed: c.claimed})
	}
}

// boundedCodec is arrow-go's codec inner with its decoding refused where
// the block claims more bytes than the destination holds.
type boundedCodec struct {
	compress.Codec
	kind    compress.Compression
	claimed func(src []byte) (n uint64, known bool, err error)
}

func (c boundedCodec) Decode(dst, src []byte) []byte {
	out, err := c.DecodeWithError(dst, src)
	if err != nil {
		panic(err)
	}
	return out
}

func (c boundedCodec) DecodeWithError(dst, src []byte) ([]byte, error) {
	n, known, err := c.claimed(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.kind, err)
	}
	if known && n > uint64(len(dst)) {
		return nil, fmt.Errorf("%s: the compressed block claims %d bytes, more than the page's %d", c.kind, n, len(dst))
	}
	return compress.Decode(c.Codec, dst, src)
}

func snappyClaim(src []byte) (uint64, bool, error) {
	n, err := snappy.DecodedLen(src)
	return uint64(max(n, 0)), err == nil, err
}

// zstdClaim returns the content size of src's first frame, where it says.
func zstdClaim(src []byte) (uint64, bool, error) {
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return 0, false, err
	}
	return h.FrameContentSize, h.HasFCS, nil
}

// boundedZstd decodes with a decoder whose output is bounded by the
// largest page arrow-go accepts, for the frames after the first (whose
// size boundedCodec checked) and the frames that do not say their size.
type boundedZstd struct{ compress.Codec }

var zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(uint64(pq.DefaultMaxUncompressedPageSize)), zstd.WithDecoderConcurrency(0))

func (boundedZstd) DecodeWithError(dst, src []byte) ([]byte, error) {
	return zstdDecoder.DecodeAll(src, dst[:0])
}

func (z boundedZstd) Decode(dst, src []byte) []byte {
	out, err := z.DecodeWithError(dst, src)
	if err != nil {
		panic(err)
	}
	return out
}
