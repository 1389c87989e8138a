package store

import (
	"bytes"
	"context"
	"sync"
)

// blobCache keeps the contents of blobs already read and checked against their hash, up to a
// number of bytes, oldest out first. A blob's content is named by its hash and never changes,
// so a command that reads the same artifacts many times (an incident's targets, every snapshot
// of its history) reads, decompresses and checks each once.
type blobCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	m     map[string][]byte
	order []string
}

// CacheBlobs keeps up to maxBytes of the blob contents read, for the store's lifetime. Each
// content is checked against its hash when it is first read, as Blob checks it; the cache
// hands out copies. Long-running processes leave it off, so that their memory stays flat.
func (s *Store) CacheBlobs(maxBytes int64) {
	s.cache = &blobCache{max: maxBytes, m: map[string][]byte{}}
}

func (c *blobCache) get(hash string, size int64) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[hash]
	if !ok || (size >= 0 && int64(len(b)) != size) {
		return nil, false
	}
	return bytes.Clone(b), true
}

func (c *blobCache) put(hash string, b []byte) {
	if c == nil || int64(len(b)) > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[hash]; ok {
		return
	}
	for c.size+int64(len(b)) > c.max && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		c.size -= int64(len(c.m[old]))
		delete(c.m, old)
	}
	c.m[hash] = bytes.Clone(b)
	c.order = append(c.order, hash)
	c.size += int64(len(b))
}

// Prefetch reads the blobs of the given hashes that the cache does not hold in one query,
// checking each against its hash, into the cache. It does nothing when the cache is off; a
// blob it cannot read or check is left for Blob to report.
func (s *Store) Prefetch(ctx context.Context, hashes []string) error {
	if s.cache == nil {
		return nil
	}
	var want []string // ReadBlobs reads a hash asked for twice once
	s.cache.mu.Lock()
	for _, h := range hashes {
		if _, ok := s.cache.m[h]; !ok {
			want = append(want, h)
		}
	}
	s.cache.mu.Unlock()
	c, err := s.ReadBlobs(ctx, want...)
	if err != nil {
		return err
	}
	c.Check() // what is wrong with a blob is left for Blob to report
	return nil
}
