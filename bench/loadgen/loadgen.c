/*
 * Open-loop HTTP/1.1 load generator for the Causeway benchmark suite.
 *
 * Requests are due on a fixed timeline (request k at t0 + k/rate), whatever the server does.
 * A due request goes out on the first idle keep-alive connection (round-robin, no pipelining);
 * when every connection is busy it waits, and its latency still counts from its scheduled send
 * time, so a stalled server shows up as latency instead of being hidden by a slower sender
 * (coordinated omission). Latency is recorded in microseconds (CLOCK_MONOTONIC).
 *
 * Usage: loadgen -a HOST -p PORT [-P PATH] -r RATE -d SECONDS [-w WARMUP_SECONDS]
 *                [-c CONNECTIONS] [-t TIMEOUT_MS] [-H 'Name: value']...
 * Prints one JSON object on stdout. Exit 0 when the run completed (even with request errors),
 * 2 on bad arguments or when no connection could be opened.
 *
 * Built by bench/run.ts with the system `cc` into a temporary directory.
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
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum cstate { C_CLOSED, C_CONNECTING, C_IDLE, C_BUSY };
enum pstate { P_HEAD, P_BODY_LEN, P_CHUNK_SIZE, P_CHUNK_DATA, P_TRAILER, P_BODY_EOF };

struct conn {
  int fd;
  enum cstate state;
  /* current request */
  uint64_t sched_ns;   /* scheduled send time */
  uint64_t sent_ns;    /* actual send time (for the timeout) */
  int64_t index;       /* request index on the timeline */
  size_t woff;         /* bytes of the request written */
  /* response parser */
  enum pstate ps;
  char head[16384];
  size_t head_len;
  char line[256];
  size_t line_len;
  uint64_t remaining;
  int status;
  int close_after;
  int next_idle; /* idle FIFO link */
  int in_idle;
};

static struct conn *conns;
static int nconns = 32;
static const char *host = "127.0.0.1";
static int port = 0;
static const char *path = "/";
static double rate = 1000;
static double duration_s = 5, warmup_s = 1;
static int timeout_ms = 5000;
static char *request_buf;
static size_t request_len;
static struct sockaddr_in addr;
static int epfd, tfd;

static int idle_head = -1, idle_tail = -1;
static int64_t warm_k, total_k;

/* results */
static uint32_t *lat_us;
static uint64_t lat_n;
static uint64_t ok_total, status_errors, conn_errors, timeouts, unsent, measured_sent;
static uint64_t reconnects;
static uint64_t status_counts[6]; /* 1xx..5xx by first digit */
static uint64_t bytes_read;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *msg) {
  fprintf(stderr, "loadgen: %s\n", msg);
  exit(2);
}

static void idle_push(int i) {
  struct conn *c = &conns[i];
  if (c->in_idle) return;
  c->in_idle = 1;
  c->next_idle = -1;
  if (idle_tail < 0) idle_head = idle_tail = i;
  else { conns[idle_tail].next_idle = i; idle_tail = i; }
}

static int idle_pop(void) {
  while (idle_head >= 0) {
    int i = idle_head;
    idle_head = conns[i].next_idle;
    if (idle_head < 0) idle_tail = -1;
    conns[i].in_idle = 0;
    if (conns[i].state == C_IDLE) return i;
  }
  return -1;
}

static void conn_open(int i) {
  struct conn *c = &conns[i];
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket() failed");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd = fd;
  c->state = C_CONNECTING;
  c->in_idle = 0;
  int r = connect(fd, (struct sockaddr *)&addr, sizeof addr);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u32 = (uint32_t)i};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl(ADD) failed");
  if (r == 0) {
    c->state = C_IDLE;
    ev.events = EPOLLIN | EPOLLRDHUP;
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
    idle_push(i);
  } else if (errno != EINPROGRESS) {
    /* stays C_CONNECTING until the error is reported by epoll */
  }
}

static void conn_close(int i) {
  struct conn *c = &conns[i];
  if (c->fd >= 0) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  c->fd = -1;
  c->state = C_CLOSED;
}

/* The request in flight on i failed (reset, EOF, timeout): count it and reconnect. */
static void conn_fail(int i, int is_timeout, int reconnect) {
  struct conn *c = &conns[i];
  if (c->state == C_BUSY && c->index >= warm_k) {
    if (is_timeout) timeouts++;
    else conn_errors++;
  } else if (c->state == C_CONNECTING) {
    conn_errors++;
  }
  conn_close(i);
  if (reconnect) { reconnects++; conn_open(i); }
}

static void parser_reset(struct conn *c) {
  c->ps = P_HEAD;
  c->head_len = 0;
  c->line_len = 0;
  c->remaining = 0;
  c->status = 0;
  c->close_after = 0;
}

static void complete(int i, uint64_t t) {
  struct conn *c = &conns[i];
  if (c->index >= warm_k) {
    if (c->status >= 200 && c->status < 400) {
      uint64_t us = (t - c->sched_ns) / 1000;
      lat_us[lat_n++] = us > 0xffffffffull ? 0xffffffffu : (uint32_t)us;
      ok_total++;
    } else {
      status_errors++;
    }
  }
  if (c->index >= warm_k && c->status >= 100 && c->status < 600) status_counts[c->status / 100]++;
  c->index = -1;
  if (c->close_after) {
    conn_close(i);
    reconnects++;
    conn_open(i);
  } else {
    c->state = C_IDLE;
    idle_push(i);
  }
}

static int header_is(const char *line, size_t len, const char *name) {
  size_t n = strlen(name);
  return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

static const char *header_value(const char *line, size_t len, const char *name, size_t *vlen) {
  const char *v = line + strlen(name) + 1;
  const char *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
  *vlen = (size_t)(end - v);
  return v;
}

static int contains_ci(const char *s, size_t len, const char *word) {
  size_t n = strlen(word);
  for (size_t k = 0; k + n <= len; k++)
    if (strncasecmp(s + k, word, n) == 0) return 1;
  return 0;
}

/* Parses the header block; returns 0 when malformed. */
static int parse_head(struct conn *c) {
  const char *h = c->head;
  size_t len = c->head_len;
  if (len < 12 || strncmp(h, "HTTP/1.", 7) != 0) return 0;
  c->status = atoi(h + 9);
  int http10 = h[7] == '0';
  int chunked = 0;
  int64_t clen = -1;
  int conn_close_hdr = http10, keep_alive = 0;
  const char *p = memchr(h, '\n', len);
  while (p && (size_t)(p + 1 - h) < len) {
    const char *ls = p + 1;
    const char *le = memchr(ls, '\n', len - (size_t)(ls - h));
    if (!le) break;
    size_t ll = (size_t)(le - ls);
    if (ll > 0 && ls[ll - 1] == '\r') ll--;
    if (ll == 0) break;
    size_t vl;
    const char *v;
    if (header_is(ls, ll, "content-length")) {
      v = header_value(ls, ll, "content-length", &vl);
      clen = strtoll(v, NULL, 10);
    } else if (header_is(ls, ll, "transfer-encoding")) {
      v = header_value(ls, ll, "transfer-encoding", &vl);
      if (contains_ci(v, vl, "chunked")) chunked = 1;
    } else if (header_is(ls, ll, "connection")) {
      v = header_value(ls, ll, "connection", &vl);
      if (contains_ci(v, vl, "close")) conn_close_hdr = 1;
      if (contains_ci(v, vl, "keep-alive")) keep_alive = 1;
    }
    p = le;
  }
  if (http10 && keep_alive) conn_close_hdr = 0;
  c->close_after = conn_close_hdr;
  int no_body = (c->status >= 100 && c->status < 200) || c->status == 204 || c->status == 304;
  if (no_body) { c->ps = P_BODY_LEN; c->remaining = 0; }
  else if (chunked) { c->ps = P_CHUNK_SIZE; c->line_len = 0; }
  else if (clen >= 0) { c->ps = P_BODY_LEN; c->remaining = (uint64_t)clen; }
  else { c->ps = P_BODY_EOF; c->close_after = 1; }
  return 1;
}

/* Feeds bytes to the parser. Returns 1 when a response completed (with the rest ignored:
 * no pipelining, so nothing may follow), 0 when more is needed, -1 on a protocol error. */
static int feed(struct conn *c, const char *buf, size_t n) {
  size_t k = 0;
  while (k < n || (c->ps == P_BODY_LEN && c->remaining == 0)) {
    switch (c->ps) {
    case P_HEAD: {
      size_t take = n - k;
      if (c->head_len + take > sizeof c->head) take = sizeof c->head - c->head_len;
      if (take == 0) return -1;
      size_t start = c->head_len >= 3 ? c->head_len - 3 : 0;
      memcpy(c->head + c->head_len, buf + k, take);
      c->head_len += take;
      char *end = memmem(c->head + start, c->head_len - start, "\r\n\r\n", 4);
      if (!end) { k += take; break; }
      size_t head_bytes = (size_t)(end + 4 - c->head);
      size_t consumed = head_bytes - (c->head_len - take);
      c->head_len = head_bytes;
      k += consumed;
      if (!parse_head(c)) return -1;
      break;
    }
    case P_BODY_LEN: {
      if (c->remaining == 0) return 1;
      size_t take = n - k;
      if (take > c->remaining) take = (size_t)c->remaining;
      c->remaining -= take;
      k += take;
      if (c->remaining == 0) return 1;
      break;
    }
    case P_BODY_EOF:
      k = n;
      break;
    case P_CHUNK_SIZE:
    case P_TRAILER: {
      char ch = buf[k++];
      if (ch == '\n') {
        size_t ll = c->line_len;
        if (ll > 0 && c->line[ll - 1] == '\r') ll--;
        c->line[ll] = 0;
        c->line_len = 0;
        if (c->ps == P_TRAILER) {
          if (ll == 0) return 1;
        } else {
          if (ll == 0) return -1;
          uint64_t size = strtoull(c->line, NULL, 16);
          if (size == 0) c->ps = P_TRAILER;
          else { c->ps = P_CHUNK_DATA; c->remaining = size + 2; }
        }
      } else if (c->line_len < sizeof c->line - 1) {
        c->line[c->line_len++] = ch;
      }
      break;
    }
    case P_CHUNK_DATA: {
      size_t take = n - k;
      if (take > c->remaining) take = (size_t)c->remaining;
      c->remaining -= take;
      k += take;
      if (c->remaining == 0) c->ps = P_CHUNK_SIZE;
      break;
    }
    }
  }
  return 0;
}

static uint64_t t0;
static int64_t next_k;

static inline uint64_t sched_of(int64_t k) {
  return t0 + (uint64_t)((double)k * 1e9 / rate);
}

static void send_on(int i, uint64_t t) {
  struct conn *c = &conns[i];
  c->state = C_BUSY;
  c->sched_ns = sched_of(next_k);
  c->sent_ns = t;
  c->index = next_k;
  if (next_k >= warm_k) measured_sent++;
  next_k++;
  parser_reset(c);
  ssize_t w = write(c->fd, request_buf, request_len);
  if (w == (ssize_t)request_len) { c->woff = request_len; return; }
  if (w < 0 && errno != EAGAIN) { conn_fail(i, 0, 1); return; }
  c->woff = w < 0 ? 0 : (size_t)w;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u32 = (uint32_t)i};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void dispatch_due(uint64_t t) {
  while (next_k < total_k && sched_of(next_k) <= t) {
    int i = idle_pop();
    if (i < 0) return;
    send_on(i, t);
  }
}

static void arm_timer(void) {
  struct itimerspec its;
  memset(&its, 0, sizeof its);
  if (next_k < total_k && idle_head >= 0) {
    uint64_t s = sched_of(next_k);
    its.it_value.tv_sec = (time_t)(s / 1000000000ull);
    its.it_value.tv_nsec = (long)(s % 1000000000ull);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
  }
  timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static uint32_t pct(double p) {
  if (lat_n == 0) return 0;
  uint64_t idx = (uint64_t)(p * (double)lat_n + 0.999999);
  if (idx < 1) idx = 1;
  if (idx > lat_n) idx = lat_n;
  return lat_us[idx - 1];
}

int main(int argc, char **argv) {
  char headers[8192] = "";
  size_t hlen = 0;
  int opt;
  while ((opt = getopt(argc, argv, "a:p:P:r:d:w:c:t:H:")) != -1) {
    switch (opt) {
    case 'a': host = optarg; break;
    case 'p': port = atoi(optarg); break;
    case 'P': path = optarg; break;
    case 'r': rate = atof(optarg); break;
    case 'd': duration_s = atof(optarg); break;
    case 'w': warmup_s = atof(optarg); break;
    case 'c': nconns = atoi(optarg); break;
    case 't': timeout_ms = atoi(optarg); break;
    case 'H': {
      size_t l = strlen(optarg);
      if (hlen + l + 3 > sizeof headers) die("headers too long");
      memcpy(headers + hlen, optarg, l);
      hlen += l;
      memcpy(headers + hlen, "\r\n", 3);
      hlen += 2;
      break;
    }
    default: die("usage: loadgen -a HOST -p PORT [-P PATH] -r RATE -d SECONDS [-w WARMUP] [-c CONNS] [-t TIMEOUT_MS] [-H 'Name: value']...");
    }
  }
  if (port <= 0 || rate <= 0 || duration_s <= 0 || nconns <= 0 || warmup_s < 0) die("bad arguments");
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("host must be an IPv4 address");

  request_len = (size_t)asprintf(&request_buf,
                                 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: causeway-loadgen\r\nAccept: */*\r\n%s\r\n",
                                 path, host, port, headers);

  warm_k = (int64_t)(rate * warmup_s);
  total_k = warm_k + (int64_t)(rate * duration_s);
  lat_us = calloc((size_t)(total_k - warm_k) + 1, sizeof *lat_us);
  conns = calloc((size_t)nconns, sizeof *conns);
  if (!lat_us || !conns) die("out of memory");

  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* wake up on time, not up to 50 us late */
  epfd = epoll_create1(EPOLL_CLOEXEC);
  tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  struct epoll_event tev = {.events = EPOLLIN, .data.u32 = 0xffffffffu};
  epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev);

  for (int i = 0; i < nconns; i++) { conns[i].fd = -1; conns[i].index = -1; conn_open(i); }

  /* Wait (up to 3 s) for the connections to open before the timeline starts. */
  struct epoll_event evs[256];
  uint64_t deadline = now_ns() + 3000000000ull;
  int opened = 0;
  while (now_ns() < deadline) {
    opened = 0;
    for (int i = 0; i < nconns; i++) opened += conns[i].state == C_IDLE;
    if (opened == nconns) break;
    int n = epoll_wait(epfd, evs, 256, 50);
    for (int e = 0; e < n; e++) {
      uint32_t i = evs[e].data.u32;
      if (i == 0xffffffffu) continue;
      struct conn *c = &conns[i];
      if (c->state != C_CONNECTING) continue;
      int err = 0;
      socklen_t el = sizeof err;
      getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
      if (err || (evs[e].events & (EPOLLERR | EPOLLHUP))) { conn_close((int)i); continue; }
      c->state = C_IDLE;
      struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = i};
      epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
      idle_push((int)i);
    }
  }
  if (opened == 0) die("could not connect");
  for (int i = 0; i < nconns; i++)
    if (conns[i].state == C_CLOSED) conn_open(i); /* retry the failed ones in the background */
  conn_errors = 0;

  t0 = now_ns() + 1000000ull;
  next_k = 0;
  uint64_t end_sched = sched_of(total_k);
  uint64_t drain_deadline = end_sched + (uint64_t)timeout_ms * 1000000ull;
  uint64_t last_check = t0;
  static char rbuf[65536];

  for (;;) {
    uint64_t t = now_ns();
    dispatch_due(t);
    int busy = 0;
    for (int i = 0; i < nconns; i++) busy += conns[i].state == C_BUSY;
    if (next_k >= total_k && busy == 0) break;
    if (t > drain_deadline) break;
    arm_timer();
    int n = epoll_wait(epfd, evs, 256, 100);
    t = now_ns();
    for (int e = 0; e < n; e++) {
      uint32_t i = evs[e].data.u32;
      if (i == 0xffffffffu) {
        uint64_t exp;
        ssize_t r = read(tfd, &exp, sizeof exp);
        (void)r;
        continue;
      }
      struct conn *c = &conns[i];
      if (c->fd < 0) continue;
      uint32_t events = evs[e].events;
      if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (events & (EPOLLERR | EPOLLHUP))) { conn_fail((int)i, 0, 0); continue; }
        c->state = C_IDLE;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = i};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        idle_push((int)i);
        continue;
      }
      if ((events & EPOLLOUT) && c->state == C_BUSY && c->woff < request_len) {
        ssize_t w = write(c->fd, request_buf + c->woff, request_len - c->woff);
        if (w < 0 && errno != EAGAIN) { conn_fail((int)i, 0, 1); continue; }
        if (w > 0) c->woff += (size_t)w;
        if (c->woff == request_len) {
          struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = i};
          epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        }
      }
      if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        for (;;) {
          ssize_t r = read(c->fd, rbuf, sizeof rbuf);
          if (r > 0) {
            bytes_read += (uint64_t)r;
            if (c->state != C_BUSY) { conn_fail((int)i, 0, 1); break; } /* unsolicited bytes */
            int done = feed(c, rbuf, (size_t)r);
            if (done < 0) { conn_fail((int)i, 0, 1); break; }
            if (done > 0) { complete((int)i, now_ns()); break; }
            continue;
          }
          if (r == 0) {
            if (c->state == C_BUSY && c->ps == P_BODY_EOF) { complete((int)i, now_ns()); break; }
            /* Server closed the connection: an error only if a request was in flight. */
            if (c->state == C_BUSY) conn_fail((int)i, 0, 1);
            else { conn_close((int)i); reconnects++; conn_open((int)i); }
            break;
          }
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          if (errno == EINTR) continue;
          conn_fail((int)i, 0, 1);
          break;
        }
      }
    }
    if (t - last_check > 50000000ull) {
      last_check = t;
      for (int i = 0; i < nconns; i++) {
        if (conns[i].state == C_BUSY && t - conns[i].sent_ns > (uint64_t)timeout_ms * 1000000ull) conn_fail(i, 1, 1);
        else if (conns[i].state == C_CLOSED) conn_open(i);
      }
    }
  }
  uint64_t t_end = now_ns();
  for (int i = 0; i < nconns; i++)
    if (conns[i].state == C_BUSY) { if (conns[i].index >= warm_k) timeouts++; conns[i].index = -1; }
  if (next_k < total_k) unsent = (uint64_t)(total_k - (next_k > warm_k ? next_k : warm_k));

  qsort(lat_us, lat_n, sizeof *lat_us, cmp_u32);
  double measured_s = duration_s;
  uint64_t errors = status_errors + conn_errors + timeouts + unsent;
  double mean = 0;
  for (uint64_t k = 0; k < lat_n; k++) mean += lat_us[k];
  if (lat_n) mean /= (double)lat_n;
  printf("{\"rate\":%.1f,\"duration_s\":%.3f,\"warmup_s\":%.3f,\"connections\":%d,"
         "\"scheduled\":%lld,\"sent\":%llu,\"ok\":%llu,\"errors\":%llu,"
         "\"status_errors\":%llu,\"conn_errors\":%llu,\"timeouts\":%llu,\"unsent\":%llu,"
         "\"reconnects\":%llu,\"status\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu},"
         "\"achieved_rps\":%.1f,\"mean_us\":%.1f,\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,\"p999_us\":%u,\"max_us\":%u,"
         "\"wall_s\":%.3f,\"bytes_read\":%llu}\n",
         rate, duration_s, warmup_s, nconns, (long long)(total_k - warm_k), (unsigned long long)measured_sent,
         (unsigned long long)ok_total, (unsigned long long)errors, (unsigned long long)status_errors,
         (unsigned long long)conn_errors, (unsigned long long)timeouts, (unsigned long long)unsent,
         (unsigned long long)reconnects, (unsigned long long)status_counts[1], (unsigned long long)status_counts[2],
         (unsigned long long)status_counts[3], (unsigned long long)status_counts[4], (unsigned long long)status_counts[5],
         (double)ok_total / measured_s, mean, pct(0.50), pct(0.90), pct(0.99), pct(0.999), lat_n ? lat_us[lat_n - 1] : 0,
         (double)(t_end - t0) / 1e9, (unsigned long long)bytes_read);
  return 0;
}
