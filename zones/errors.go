package zones

import (
	"errors"
	"fmt"
	"sort"
)

// PosError is one problem found in a zone file, located by file, line and
// column (both 1-based; Col is 0 when the source gives no column).
type PosError struct {
	File string
	Line int
	Col  int
	Msg  string
}

func (e *PosError) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Col == 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// errList collects positioned errors so a whole file is checked in one pass.
type errList []*PosError

func (l *errList) add(file string, line, col int, format string, args ...any) {
	*l = append(*l, &PosError{File: file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

// err returns the collected errors in file order, joined, or nil.
func (l errList) err() error {
	if len(l) == 0 {
		return nil
	}
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].File != l[j].File {
			return l[i].File < l[j].File
		}
		if l[i].Line != l[j].Line {
			return l[i].Line < l[j].Line
		}
		return l[i].Col < l[j].Col
	})
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// Errors unpacks an error returned by this package into its positioned parts.
func Errors(err error) []*PosError {
	var out []*PosError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var pe *PosError
		if errors.As(err, &pe) {
			out = append(out, pe)
			return
		}
		out = append(out, &PosError{Msg: err.Error()})
	}
	walk(err)
	return out
}

// sorted returns the collected errors in file order.
func (l errList) sorted() []*PosError {
	if len(l) == 0 {
		return nil
	}
	l.err() // sorts in place
	return l
}
