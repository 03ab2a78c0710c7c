package rawconn

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// echoLoop runs ReadLoop on c, writing back what each read brings; it
// counts the reads (rooms handed out) and the reads that brought data.
type echoLoop struct {
	c           io.Writer
	buf         []byte
	reads, data int
	end         error
}

func (e *echoLoop) room() []byte { e.reads++; return e.buf }

func (e *echoLoop) got(n int, err error) (bool, bool) {
	if err != nil {
		e.end = err
		return false, false
	}
	e.data++
	if _, err := e.c.Write(e.buf[:n]); err != nil {
		e.end = err
		return false, false
	}
	return true, n < len(e.buf)
}

// TestReadLoopMissesNothing: a peer that sends the next message the moment
// it has the last one back — data that comes while the loop answers, just
// after a read that drained the socket — gets every answer; the loop
// reads only what it answers (on Linux it makes no read that finds
// nothing but a few), and ends with the peer's EOF.
func TestReadLoopMissesNothing(t *testing.T) {
	c, peer := pair(t)
	e := &echoLoop{c: c, buf: make([]byte, 512)}
	done := make(chan struct{})
	go func() { defer close(done); ReadLoop(c, e.room, e.got) }()
	peer.SetDeadline(time.Now().Add(20 * time.Second))
	const rounds = 3000
	msg, back := make([]byte, 100), make([]byte, 100)
	for i := range rounds {
		msg[0] = byte(i)
		_, err := peer.Write(msg)
		require.NoError(t, err)
		_, err = io.ReadFull(peer, back)
		require.NoError(t, err, "round %d", i)
		require.Equal(t, byte(i), back[0])
	}
	peer.Close()
	<-done
	require.ErrorIs(t, e.end, io.EOF)
	if runtime.GOOS == "linux" {
		// A read per message plus the EOF; a read that found nothing after
		// each answer would make about 2 per message.
		require.Less(t, e.reads, e.data+rounds/10, "reads %d, with data %d", e.reads, e.data)
	}
}

// TestReadLoopDeadlineUnderFlood: a deadline ends the loop although data
// never stops coming (every read fills the room it is given).
func TestReadLoopDeadlineUnderFlood(t *testing.T) {
	c, peer := pair(t)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := peer.Write(chunk); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 16)
	var end error
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	start := time.Now()
	ReadLoop(c, func() []byte { return buf }, func(n int, err error) (bool, bool) {
		if err != nil {
			end = err
			return false, false
		}
		return true, n < len(buf)
	})
	require.True(t, errors.Is(end, os.ErrDeadlineExceeded), "got %v", end)
	require.Less(t, time.Since(start), 10*time.Second)
}

// TestReadLoopSeesEOFAfterLastData: a peer that sends its last message and
// its FIN together (a client half-closing after its last query) ends the
// loop at once. The read that takes the message takes the FIN with it and
// returns less than it asked, like a read that drained the socket; no
// readiness comes after it, so a loop that waited then sat until its
// deadline (a handed-off DNS connection: 10 s).
func TestReadLoopSeesEOFAfterLastData(t *testing.T) {
	for _, after := range []bool{false, true} {
		c, peer := pair(t)
		e := &echoLoop{c: c, buf: make([]byte, 512)}
		if !after {
			// Queued before the loop's first read.
			_, err := peer.Write(make([]byte, 100))
			require.NoError(t, err)
			require.NoError(t, peer.(*net.TCPConn).CloseWrite())
			time.Sleep(50 * time.Millisecond)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		done := make(chan struct{})
		start := time.Now()
		go func() { defer close(done); ReadLoop(c, e.room, e.got) }()
		if after {
			// Queued while the loop waits, after a first message.
			_, err := peer.Write(make([]byte, 100))
			require.NoError(t, err)
			_, err = io.ReadFull(peer, make([]byte, 100))
			require.NoError(t, err)
			_, err = peer.Write(make([]byte, 100))
			require.NoError(t, err)
			require.NoError(t, peer.(*net.TCPConn).CloseWrite())
		}
		<-done
		require.ErrorIs(t, e.end, io.EOF, "after a first message: %v", after)
		require.Less(t, time.Since(start), time.Second, "after a first message: %v", after)
	}
}
