// floor: what the kernel alone charges a health checker per probe on this
// machine's loopback, measured with the fewest system calls a C checker
// would make. The server runs in a child process; the numbers are the
// checker process's own user and system time per probe.
//
//   cc -O2 -o /tmp/probe-floor floor.c && /tmp/probe-floor 30000
//
// Modes, each N probes in turn: "connect" (socket, SO_LINGER 0, connect,
// epoll for writable, SO_ERROR, close), "http" (the same, then a GET with
// Connection: close and the whole response read), "keepalive" (a GET and
// its response on one connection kept open).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *req_close = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
static const char *req_keep = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
static const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static void serve(int l) {
	char buf[512];
	for (;;) {
		int c = accept(l, 0, 0);
		if (c < 0)
			continue;
		for (;;) { // answer each request until the checker closes
			int n = read(c, buf, sizeof buf);
			if (n <= 0 || write(c, resp, strlen(resp)) < 0)
				break;
		}
		close(c);
	}
}

static double usec(struct timeval t) { return t.tv_sec * 1e6 + t.tv_usec; }

static void report(const char *mode, int n, struct rusage *a, struct rusage *b) {
	printf("%-9s %d probes: user %.1f us, system %.1f us per probe\n", mode, n,
	       (usec(b->ru_utime) - usec(a->ru_utime)) / n, (usec(b->ru_stime) - usec(a->ru_stime)) / n);
}

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 30000;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(l, (void *)&a, sizeof a) || listen(l, 4096) || getsockname(l, (void *)&a, &alen)) {
		perror("listen");
		return 1;
	}
	pid_t child = fork();
	if (child == 0)
		serve(l);
	close(l);

	int ep = epoll_create1(0);
	struct linger lg = {1, 0};
	struct epoll_event ev, out;
	char buf[512];
	struct rusage r0, r1;
	for (int mode = 0; mode < 2; mode++) {
		getrusage(RUSAGE_SELF, &r0);
		for (int i = 0; i < n; i++) {
			int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
			connect(s, (void *)&a, sizeof a);
			ev = (struct epoll_event){.events = EPOLLOUT | EPOLLIN, .data.fd = s};
			epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
			epoll_wait(ep, &out, 1, 1000);
			int err = 0;
			socklen_t el = sizeof err;
			getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el);
			if (err) {
				fprintf(stderr, "connect: %s\n", strerror(err));
				return 1;
			}
			if (mode == 1) {
				write(s, req_close, strlen(req_close));
				for (size_t got = 0; got < strlen(resp);) { // the whole response
					epoll_wait(ep, &out, 1, 1000);
					int k = read(s, buf, sizeof buf);
					if (k <= 0)
						break;
					got += k;
				}
			}
			close(s);
		}
		getrusage(RUSAGE_SELF, &r1);
		report(mode == 0 ? "connect" : "http", n, &r0, &r1);
	}

	int s = socket(AF_INET, SOCK_STREAM, 0);
	connect(s, (void *)&a, sizeof a);
	ev = (struct epoll_event){.events = EPOLLIN, .data.fd = s};
	epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
	getrusage(RUSAGE_SELF, &r0);
	for (int i = 0; i < n; i++) {
		write(s, req_keep, strlen(req_keep));
		epoll_wait(ep, &out, 1, 1000);
		read(s, buf, sizeof buf);
	}
	getrusage(RUSAGE_SELF, &r1);
	report("keepalive", n, &r0, &r1);
	kill(child, SIGKILL);
	return 0;
}
