//go:build !linux

package health

// The event loop runs on Linux only: elsewhere every probe runs in a
// goroutine, and no connection is a bare socket.
func newEvloop(*prober, loopOwner) (looper, error) { return nil, nil }

func closeFD(int) {}
