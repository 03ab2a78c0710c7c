package zones

import "sync/atomic"

var compileHook atomic.Pointer[func() (done func())]

// SetCompileHook sets what runs around every zone compile: f is called as
// a compile starts and the function it returns when it ends; compiles may
// run concurrently. cmd/geodns raises GOGC with it while zones load: a
// process-wide knob is the program's to set, not this package's. nil:
// nothing runs.
func SetCompileHook(f func() (done func())) {
	if f == nil {
		compileHook.Store(nil)
		return
	}
	compileHook.Store(&f)
}

// compiling runs the compile hook, if any, and returns its done.
func compiling() (done func()) {
	if f := compileHook.Load(); f != nil {
		return (*f)()
	}
	return func() {}
}
