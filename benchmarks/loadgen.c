/* NUT protocol load generator for benchmarks/run.py (compiled at run time).
 *
 *   loadgen rr   HOST PORT CONNS SECONDS WARMUP TERMINATOR EXPECT REQUEST
 *   loadgen idle HOST PORT NIDLE SECONDS CONNECT_BUDGET TERMINATOR EXPECT REQUEST
 *
 * rr:   CONNS connections, each with exactly one request outstanding (send
 *       REQUEST, read until the reply ends with TERMINATOR, send again), driven
 *       by one epoll loop.  Requests completing in the first WARMUP seconds are
 *       not counted; the measurement lasts SECONDS.
 * idle: open NIDLE connections, 8 at a time, each asking REQUEST once (so we
 *       know the server accepted it) and then sending nothing (giving up on
 *       opening more after CONNECT_BUDGET seconds; a connect() after 1 s); then one poller connection
 *       does request/response for SECONDS while they stay open; finally every
 *       idle connection sends REQUEST once and the replies are counted.
 *
 * A reply is "ok" when it starts with EXPECT.  Output: one JSON object on
 * stdout, including this process's own CPU time (getrusage), so the caller can
 * report how much of the 2-core machine the generator itself used.
 * "\n" in TERMINATOR/EXPECT/REQUEST arguments is unescaped.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFSZ 65536
#define OPEN_BATCH 8

typedef struct {
    int fd;
    size_t got;      /* bytes of the current reply received so far */
    char tail[64];   /* last bytes of the current reply (terminator matching) */
    size_t taillen;
    int first_ok;    /* first bytes of the reply matched EXPECT (checked once) */
    int checked;
    uint64_t t0;     /* send time, ns */
    int state;       /* 0 idle, 1 waiting for a reply, 2 done, -1 closed */
} conn_t;

static const char *term, *expect, *req;
static size_t termlen, expectlen, reqlen;
static char rbuf[BUFSZ];

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static char *unescape(const char *s) {
    char *out = malloc(strlen(s) + 1), *o = out;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] == 'n') { *o++ = '\n'; s++; }
        else *o++ = *s;
    }
    *o = 0;
    return out;
}

/* latency samples in microseconds (float) */
static double *lat; static size_t nlat, caplat;
static void add_lat(double us) {
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 1 << 16;
        lat = realloc(lat, caplat * sizeof *lat);
    }
    lat[nlat++] = us;
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double pct(double p) {
    if (!nlat) return -1;
    size_t i = (size_t)(p / 100.0 * (double)(nlat - 1) + 0.5);
    return lat[i];
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
}

static int open_conn(const char *host, int port, int nonblock) {
    struct sockaddr_in sa = {0};
    struct timeval ctv = {.tv_sec = 1};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    /* a server that stops accepting fills its backlog; SYNs are then dropped
     * and connect() would retry for minutes: give up after 1 s */
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &ctv, sizeof ctv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { close(fd); return -1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (nonblock) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static int send_req(conn_t *c) {
    c->got = 0; c->taillen = 0; c->checked = 0; c->first_ok = 0;
    c->t0 = now_ns();
    ssize_t n = send(c->fd, req, reqlen, MSG_NOSIGNAL);
    if (n != (ssize_t)reqlen) { c->state = -1; return -1; }
    c->state = 1;
    return 0;
}

/* Read what is available; return 1 when the reply is complete, 0 when more is
 * needed, -1 on EOF/error. */
static int read_reply(conn_t *c) {
    for (;;) {
        ssize_t n = recv(c->fd, rbuf, BUFSZ, 0);
        if (n == 0) return -1;
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        if (!c->checked) {
            /* EXPECT is short: compare against the first read's bytes */
            c->first_ok = (size_t)n >= expectlen && memcmp(rbuf, expect, expectlen) == 0;
            c->checked = 1;
        }
        c->got += (size_t)n;
        /* keep the last termlen bytes */
        if ((size_t)n >= termlen) {
            memcpy(c->tail, rbuf + n - termlen, termlen);
            c->taillen = termlen;
        } else {
            size_t keep = c->taillen + (size_t)n > termlen ? termlen - (size_t)n : c->taillen;
            memmove(c->tail, c->tail + c->taillen - keep, keep);
            memcpy(c->tail + keep, rbuf, (size_t)n);
            c->taillen = keep + (size_t)n;
        }
        if (c->taillen == termlen && memcmp(c->tail, term, termlen) == 0) return 1;
        if ((size_t)n < BUFSZ) return 0;
    }
}

typedef struct { int opened, connect_fail, open_lost, open_timeout, not_tried, dropped, first_errno; } open_stats;

/* Open n connections in batches of OPEN_BATCH, each asking once and waiting for
 * the answer: a connect() only means the kernel queued it, and a server with a
 * short listen backlog (C upsd: 16) drops SYNs when a client runs ahead of
 * accept(), costing a 1 s retransmit each time.  Opened connections end in
 * state 0 (idle), registered in ep; failures in state -1. */
static void open_all(const char *host, int port, conn_t *cs, int nidle, int ep, uint64_t cbudget, open_stats *st) {
    struct epoll_event evs[1024];
    for (int i = 0; i < nidle;) {
        if (now_ns() > cbudget) { for (; i < nidle; i++) { cs[i].state = -1; cs[i].fd = -1; st->not_tried++; } break; }
        int b0 = i, pending = 0;
        for (; i < nidle && i - b0 < OPEN_BATCH; i++) {
            cs[i].fd = open_conn(host, port, 1);
            if (cs[i].fd < 0) {
                if (!st->first_errno) st->first_errno = errno;
                st->connect_fail++; cs[i].state = -1;
                continue;
            }
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = &cs[i]};
            epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
            if (send_req(&cs[i]) == 0) pending++; else st->open_lost++;
        }
        uint64_t bdeadline = now_ns() + 2000000000ull;
        while (pending > 0 && now_ns() < bdeadline) {
            int n = epoll_wait(ep, evs, 1024, 100);
            for (int k = 0; k < n; k++) {
                conn_t *c = evs[k].data.ptr;
                if (c->state == 0) {  /* an older idle connection: the server dropped it */
                    c->state = -1; st->dropped++; epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); continue;
                }
                if (c->state != 1) continue;
                int r = read_reply(c);
                if (r < 0) { c->state = -1; st->open_lost++; pending--; epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); continue; }
                if (r == 1) { c->state = 0; st->opened++; pending--; }
            }
        }
        for (int j = b0; j < i; j++)
            if (cs[j].state == 1) { cs[j].state = -1; st->open_timeout++; epoll_ctl(ep, EPOLL_CTL_DEL, cs[j].fd, NULL); }
    }
}

static void print_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("\"cpu_user\": %.3f, \"cpu_sys\": %.3f",
           ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
}

static int run_rr(const char *host, int port, int nconn, double seconds, double warmup) {
    conn_t *cs = calloc((size_t)nconn, sizeof *cs);
    int ep = epoll_create1(0);
    open_stats st = {0};
    open_all(host, port, cs, nconn, ep, now_ns() + 30000000000ull, &st);
    if (st.opened != nconn) {
        fprintf(stderr, "opened %d of %d connections (%s)\n", st.opened, nconn,
                st.first_errno ? strerror(st.first_errno) : "no answer");
        return 1;
    }
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t start = now_ns();
    uint64_t mstart = start + (uint64_t)(warmup * 1e9);
    uint64_t end = mstart + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < nconn; i++) send_req(&cs[i]);
    uint64_t count = 0, bad = 0, closed = 0, bytes = 0;
    struct epoll_event evs[512];
    struct rusage rum; int have_rum = 0;
    uint64_t tnow = start;
    while (tnow < end) {
        int n = epoll_wait(ep, evs, 512, 100);
        tnow = now_ns();
        if (!have_rum && tnow >= mstart) { getrusage(RUSAGE_SELF, &rum); have_rum = 1; }
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            if (c->state != 1) continue;
            int r = read_reply(c);
            if (r < 0) { c->state = -1; closed++; epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); continue; }
            if (r == 0) continue;
            if (tnow >= mstart && c->t0 >= mstart) {
                count++;
                bytes += c->got;
                if (!c->first_ok) bad++;
                add_lat((double)(tnow - c->t0) / 1e3);
            }
            if (tnow < end) send_req(c);
        }
        if (closed == (uint64_t)nconn) break;
    }
    double elapsed = (double)(tnow - mstart) / 1e9;
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    if (!have_rum) rum = ru0;
    double cpu = (ru1.ru_utime.tv_sec - rum.ru_utime.tv_sec) + (ru1.ru_utime.tv_usec - rum.ru_utime.tv_usec) / 1e6
               + (ru1.ru_stime.tv_sec - rum.ru_stime.tv_sec) + (ru1.ru_stime.tv_usec - rum.ru_stime.tv_usec) / 1e6;
    qsort(lat, nlat, sizeof *lat, cmpd);
    printf("{\"mode\": \"rr\", \"conns\": %d, \"requests\": %llu, \"elapsed\": %.4f, \"rps\": %.1f, "
           "\"bad\": %llu, \"closed\": %llu, \"bytes_per_reply\": %.1f, "
           "\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f, "
           "\"gen_cpu_s\": %.3f, \"gen_cpu_pct\": %.1f, ",
           nconn, (unsigned long long)count, elapsed, count / elapsed, (unsigned long long)bad,
           (unsigned long long)closed, count ? (double)bytes / count : 0.0,
           pct(50), pct(90), pct(99), nlat ? lat[nlat - 1] : -1, cpu, 100.0 * cpu / elapsed);
    print_cpu();
    printf("}\n");
    return 0;
}

static int run_idle(const char *host, int port, int nidle, double seconds, double connect_budget) {
    raise_nofile();
    conn_t *cs = calloc((size_t)nidle, sizeof *cs);
    int ep = epoll_create1(0);
    uint64_t t0 = now_ns();
    uint64_t cbudget = t0 + (uint64_t)(connect_budget * 1e9);
    open_stats st = {0};
    struct epoll_event evs[1024];
    open_all(host, port, cs, nidle, ep, cbudget, &st);
    double connect_s = (double)(now_ns() - t0) / 1e9;

    /* poller: sequential request/response on its own connection */
    conn_t p = {0};
    p.fd = open_conn(host, port, 0);
    uint64_t pcount = 0, pbad = 0; int pfail = 0;
    if (p.fd < 0) pfail = 1;
    uint64_t pend = now_ns() + (uint64_t)(seconds * 1e9);
    struct timeval tv = {.tv_sec = 1};
    if (!pfail) setsockopt(p.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (!pfail && now_ns() < pend) {
        if (send_req(&p) < 0) { pfail = 2; break; }
        int r;
        while ((r = read_reply(&p)) == 0) {
            if (now_ns() - p.t0 > 5000000000ull) { r = -2; break; }
        }
        if (r == -1) { pfail = 3; break; }
        if (r == -2) { pfail = 4; break; }
        add_lat((double)(now_ns() - p.t0) / 1e3);
        pcount++;
        if (!p.first_ok) pbad++;
    }

    /* how many idle connections did the server drop while we polled? */
    int n;
    while ((n = epoll_wait(ep, evs, 1024, 0)) > 0) {
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            c->state = -1; st.dropped++;
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        }
    }

    /* every surviving idle connection asks once */
    uint64_t c0 = now_ns();
    int asked = 0, answered = 0, ok = 0, lost = 0;
    for (int i = 0; i < nidle; i++) {
        if (cs[i].state != 0) continue;
        if (send_req(&cs[i]) == 0) asked++; else lost++;
    }
    uint64_t cdeadline = now_ns() + 15000000000ull;
    while (answered + lost < asked && now_ns() < cdeadline) {
        n = epoll_wait(ep, evs, 1024, 200);
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            if (c->state != 1) continue;
            int r = read_reply(c);
            if (r < 0) { c->state = -1; lost++; epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); continue; }
            if (r == 1) { c->state = 2; answered++; if (c->first_ok) ok++; }
        }
    }
    double check_s = (double)(now_ns() - c0) / 1e9;
    qsort(lat, nlat, sizeof *lat, cmpd);
    printf("{\"mode\": \"idle\", \"nidle\": %d, \"opened\": %d, \"connect_fail\": %d, \"open_lost\": %d, \"open_timeout\": %d, \"not_tried\": %d, \"connect_errno\": \"%s\", "
           "\"connect_s\": %.3f, \"poll_requests\": %llu, \"poll_bad\": %llu, \"poll_fail\": %d, "
           "\"p50_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f, \"dropped\": %d, \"asked\": %d, "
           "\"answered\": %d, \"answered_ok\": %d, \"lost\": %d, \"check_s\": %.3f, ",
           nidle, st.opened, st.connect_fail, st.open_lost, st.open_timeout, st.not_tried,
           st.first_errno ? strerror(st.first_errno) : "", connect_s,
           (unsigned long long)pcount, (unsigned long long)pbad, pfail, pct(50), pct(99),
           nlat ? lat[nlat - 1] : -1, st.dropped, asked, answered, ok, lost, check_s);
    print_cpu();
    printf("}\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 10 && strcmp(argv[1], "rr") == 0) {
        term = unescape(argv[7]); expect = unescape(argv[8]); req = unescape(argv[9]);
        termlen = strlen(term); expectlen = strlen(expect); reqlen = strlen(req);
        if (termlen > sizeof(((conn_t *)0)->tail)) { fprintf(stderr, "terminator too long\n"); return 2; }
        raise_nofile();
        return run_rr(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]), atof(argv[6]));
    }
    if (argc >= 10 && strcmp(argv[1], "idle") == 0) {
        term = unescape(argv[7]); expect = unescape(argv[8]); req = unescape(argv[9]);
        termlen = strlen(term); expectlen = strlen(expect); reqlen = strlen(req);
        return run_idle(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]), atof(argv[6]));
    }
    fprintf(stderr, "usage: loadgen rr HOST PORT CONNS SECONDS WARMUP TERM EXPECT REQ\n"
                    "       loadgen idle HOST PORT NIDLE SECONDS CONNECT_BUDGET TERM EXPECT REQ\n");
    return 2;
}
