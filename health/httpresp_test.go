package health

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadResponse(t *testing.T) {
	for _, c := range []struct {
		name, in string
		status   int
		body     string
		reusable bool
		err      string
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokNEXT", 200, "ok", true, ""},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n3\r\n!!!\r\n0\r\nTrailer: t\r\n\r\nNEXT", 200, "ok!!!", true, ""},
		{"to the end", "HTTP/1.1 200 OK\r\n\r\nall of it", 200, "all of it", false, ""},
		{"close", "HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 503, "", false, ""},
		{"1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", false, ""},
		{"1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true, ""},
		{"LF only", "HTTP/1.1 204 No Content\n\n", 204, "", true, ""},
		{"interim first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, "x", true, ""},
		{"body longer than read", "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("a", 100000), 200, strings.Repeat("a", maxBody), false, ""},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", 0, "", false, "unexpected EOF"},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", 0, "", false, "malformed status line"},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok", 0, "", false, "bad Content-Length"},
		{"gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, "", false, "unsupported transfer encoding"},
		{"header longer than the buffer", "HTTP/1.1 200 OK\r\nSet-Cookie: " + strings.Repeat("c", 5000) + "\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true, ""},
		{"endless header", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxHeader), 0, "", false, "too long"},
		{"nothing", "", 0, "", false, "EOF"},
	} {
		t.Run(c.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(c.in), 2048)
			r, err := readResponse(br, true, maxBody)
			if c.err != "" {
				require.ErrorContains(t, err, c.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.status, r.status)
			require.Equal(t, c.body, string(r.body))
			require.Equal(t, c.reusable, r.reusable)
			if r.reusable {
				rest, _ := io.ReadAll(br)
				require.Contains(t, []string{"", "NEXT"}, string(rest), "a reusable response ends where the next begins")
			}
		})
	}
}

// TestReadResponseSmallBuffer: lines that end at the reader's buffer edge,
// where looking at the next line's first byte moves the buffer.
func TestReadResponseSmallBuffer(t *testing.T) {
	for pad := range 40 {
		for _, proto := range []string{"HTTP/1.1 200 OK\r\n", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"} {
			in := proto + "X-Pad: " + strings.Repeat("p", pad) + "\r\nContent-Length: 2\r\nX-Folded: a\r\n b\r\n\r\nok"
			r, err := readResponse(bufio.NewReaderSize(strings.NewReader(in), 16), true, maxBody)
			require.NoError(t, err, "pad %d", pad)
			require.Equal(t, 200, r.status)
			require.Equal(t, "ok", string(r.body), "pad %d", pad)
			require.True(t, r.reusable, "pad %d: %q", pad, in)
		}
	}
}

// FuzzReadResponse holds readResponse to net/http's parser: whatever
// response net/http reads, readResponse reads with the same status and
// body, and calls the connection reusable only when net/http would.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.0 503 Service Unavailable\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\nbusy",
		"HTTP/1.1 301 Moved\r\nLocation: /x\r\nConnection: close\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\nbody to the end",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ours, err := readResponse(bufio.NewReaderSize(bytes.NewReader(in), 16), true, maxBody)
		resp, herr := http.ReadResponse(bufio.NewReader(bytes.NewReader(in)), nil)
		if herr != nil || resp.StatusCode < 200 && resp.StatusCode != 101 || resp.ProtoMajor != 1 {
			return // net/http refuses it; it is interim (net/http's Transport skips those, as readResponse does); not HTTP/1.x
		}
		body, berr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if berr != nil {
			return
		}
		if resp.TransferEncoding == nil && resp.ContentLength < 0 && bytes.Contains(bytes.ToLower(in), []byte("transfer-encoding")) {
			return // a Transfer-Encoding net/http ignores (HTTP/1.0, or "identity"): readResponse refuses it
		}
		require.NoError(t, err, "net/http read status %d", resp.StatusCode)
		require.Equal(t, resp.StatusCode, ours.status)
		require.Equal(t, string(body), string(ours.body))
		if ours.reusable {
			rest, _ := io.ReadAll(resp.Body)
			require.False(t, resp.Close, "reusable, but net/http would close")
			require.Empty(t, rest, "reusable, but the body goes on")
		}
	})
}
