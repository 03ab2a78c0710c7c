// scale: what the kernel charges a checker per keep-alive http probe when
// it holds many connections, as healthload's geodns does (15,000 per
// process). floor.c measures one connection, whose kernel state stays in
// the caches; here every probe touches a socket last used a round ago.
//
//   cc -O2 -o /tmp/probe-scale scale.c && /tmp/probe-scale 15000 4 15 1500
//
// Arguments: connections, rounds over all of them, batch (requests
// written before their responses are read), and a rate in probes a
// second (0: as fast as it goes). At a rate the batches start every
// batch/rate seconds and the checker sleeps in between, as geodns's does
// (batches every 10 ms: 15 probes at 1,500 a second); flat out, every
// cache stays warm and no thread ever sleeps long, which flatters the
// kernel. The server is a child process with its own epoll, or, given a
// fifth argument, whatever listens on 127.0.0.1 at that port (healthload's
// Go listeners: HEALTHLOAD_ROLE=listen healthload -check http serves
// 20000-20099). The numbers are the checker's own user and system time per
// probe.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUser-Agent: geodns-health\r\n\r\n";
static const char *resp = "HTTP/1.1 200 OK\r\nDate: Wed, 25 Nov 2026 15:00:00 GMT\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nok";

static void serve(int l) {
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = l}, out[256];
	epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
	char buf[1024];
	for (;;) {
		int n = epoll_wait(ep, out, 256, -1);
		for (int i = 0; i < n; i++) {
			int fd = out[i].data.fd;
			if (fd == l) {
				int c = accept(l, 0, 0);
				if (c >= 0) {
					ev = (struct epoll_event){.events = EPOLLIN, .data.fd = c};
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				}
				continue;
			}
			int k = read(fd, buf, sizeof buf);
			if (k <= 0 || write(fd, resp, strlen(resp)) < 0)
				close(fd);
		}
	}
}

static double usec(struct timeval t) { return t.tv_sec * 1e6 + t.tv_usec; }

int main(int argc, char **argv) {
	int conns = argc > 1 ? atoi(argv[1]) : 15000;
	int rounds = argc > 2 ? atoi(argv[2]) : 4;
	int batch = argc > 3 ? atoi(argv[3]) : 15;
	int rate = argc > 4 ? atoi(argv[4]) : 0;
	int port = argc > 5 ? atoi(argv[5]) : 0;
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
	socklen_t alen = sizeof a;
	pid_t child = -1;
	if (port == 0) {
		int l = socket(AF_INET, SOCK_STREAM, 0);
		if (bind(l, (void *)&a, sizeof a) || listen(l, 4096) || getsockname(l, (void *)&a, &alen)) {
			perror("listen");
			return 1;
		}
		child = fork();
		if (child == 0)
			serve(l);
		close(l);
	}

	int ep = epoll_create1(0);
	int *fds = calloc(conns, sizeof *fds);
	for (int i = 0; i < conns; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || connect(fds[i], (void *)&a, sizeof a)) {
			perror("connect");
			if (child > 0) kill(child, SIGKILL);
			return 1;
		}
		struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = fds[i]};
		epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
	}
	struct epoll_event out[256];
	char buf[1024];
	struct rusage r0, r1;
	getrusage(RUSAGE_SELF, &r0);
	long probes = 0;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	long step = rate > 0 ? 1000000000L * batch / rate : 0;
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < conns; i += batch) {
			int b = i + batch <= conns ? batch : conns - i;
			if (step > 0) {
				next.tv_nsec += step;
				next.tv_sec += next.tv_nsec / 1000000000L;
				next.tv_nsec %= 1000000000L;
				clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, 0);
			}
			for (int j = 0; j < b; j++)
				write(fds[i + j], req, strlen(req));
			for (int got = 0; got < b;) {
				int n = epoll_wait(ep, out, 256, 1000);
				if (n <= 0) {
					fprintf(stderr, "no answer\n");
					if (child > 0) kill(child, SIGKILL);
					return 1;
				}
				for (int k = 0; k < n; k++)
					if (read(out[k].data.fd, buf, sizeof buf) > 0)
						got++;
			}
			probes += b;
		}
	}
	getrusage(RUSAGE_SELF, &r1);
	printf("%d connections, batches of %d, %d/s, %ld probes: user %.1f us, system %.1f us per probe (%.1f %% of a core at 3,000/s)\n",
	       conns, batch, rate, probes, (usec(r1.ru_utime) - usec(r0.ru_utime)) / probes, (usec(r1.ru_stime) - usec(r0.ru_stime)) / probes,
	       ((usec(r1.ru_utime) - usec(r0.ru_utime)) + (usec(r1.ru_stime) - usec(r0.ru_stime))) / probes * 3000 / 1e4);
	if (child > 0) kill(child, SIGKILL);
	return 0;
}
