package gateway

import "sync"

// ending is how a publication or a subscription ends, once: a channel
// closed then, and why.
type ending struct {
	once sync.Once
	done chan struct{}
	err  error
}

// why is the error the end came with, or nil before it.
func (e *ending) why() error {
	select {
	case <-e.done:
		return e.err
	default:
		return nil
	}
}

// end ends with err; only the first call counts.
func (e *ending) end(err error) {
	e.once.Do(func() {
		e.err = err
		close(e.done)
	})
}
