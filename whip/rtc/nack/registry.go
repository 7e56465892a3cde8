package nack

import "sync"

// pcRegistry finds an interceptor again by its PeerConnection's ID (pion
// builds the interceptors with it): a factory's Generators or Responders.
type pcRegistry[T comparable] struct {
	mu sync.Mutex
	m  map[string]T
}

// add files v under id. pion's IDs come from the clock: two
// PeerConnections made in one tick share one. Neither is found then (the
// zero T), instead of the wrong one.
func (r *pcRegistry[T]) add(id string, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]T{}
	}
	if _, taken := r.m[id]; taken {
		var none T
		r.m[id] = none
	} else {
		r.m[id] = v
	}
}

// find returns what is filed under id; the zero T for none or a shared id.
func (r *pcRegistry[T]) find(id string) T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[id]
}

// remove forgets id when v is what it finds.
func (r *pcRegistry[T]) remove(id string, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[id] == v {
		delete(r.m, id)
	}
}
