package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/docker/docker/client"
)

// imageTTL is how long an image lookup is trusted. Under a burst of creates
// (many refused by a quota) one lookup per image serves them all instead of
// one engine call each; an image removed meanwhile makes the create fail at
// the engine, and its row failed, as it would have anyway.
const imageTTL = 5 * time.Second

// imageCache remembers which images are present on the engine, by reference.
type imageCache struct {
	mu      sync.Mutex
	entries map[string]imageEntry
}

type imageEntry struct {
	id      string
	expires time.Time
}

// lookup returns the image id of ref, asking the engine at most once per
// imageTTL. Absent images are not cached: loading one takes effect at once.
func (c *imageCache) lookup(ctx context.Context, docker *client.Client, ref string) (string, error) {
	c.mu.Lock()
	e, ok := c.entries[ref]
	c.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.id, nil
	}
	ctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	defer cancel()
	img, err := docker.ImageInspect(ctx, ref)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]imageEntry{}
	}
	c.entries[ref] = imageEntry{id: img.ID, expires: time.Now().Add(imageTTL)}
	return img.ID, nil
}
