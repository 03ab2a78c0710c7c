package opstate

import "encoding/json"

// Marshal returns st in the state file's form: what a shared store (the
// cluster's, on etcd) keeps, so every field the file holds travels too.
func Marshal(st *State) ([]byte, error) { return json.Marshal(st.data()) }

// Unmarshal reads a state of the state file's form, with version v.
func Unmarshal(b []byte, v uint64) (*State, error) {
	var d data
	if err := decode(b, &d); err != nil {
		return nil, err
	}
	return d.state(v), nil
}

// Replace makes st (a state decided elsewhere: a shared store's) the
// file's and then current, with the next version, and tells the watchers;
// a state equal to the current one is not written again. Unlike Apply's,
// a state that cannot be written is current all the same (it is durable
// where it was decided); the error is returned and Err says it until a
// write succeeds.
func (s *FileStore) Replace(st *State) (*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	a, _ := Marshal(cur)
	b, _ := Marshal(st)
	if string(a) == string(b) {
		return cur, nil
	}
	next := st.data().state(cur.version + 1)
	var err error
	if s.opts.Path != "" {
		err = s.write(next)
	}
	s.cur.Store(next)
	if ws := s.watchers.Load(); ws != nil {
		for _, f := range *ws {
			f(next)
		}
	}
	return next, err
}
