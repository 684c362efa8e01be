package client

// Waiting returns how many calls of c wait in its shared watch, and
// whether the watch runs.
func Waiting(c *Client) (calls int, running bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watch == nil {
		return 0, false
	}
	c.watch.mu.Lock()
	defer c.watch.mu.Unlock()
	return c.watch.count, true
}
