/*
 * wire.c - the messages between the driver and its children (README
 * "Protocols" P2): growing buffers, whole-message sends, a reader that
 * drops a message cut short by its writer's death, body parsing, and the
 * monotonic clock both sides stamp with. Entry points: ct_put_*, ct_send,
 * ct_recv, ct_get_*, ct_now_ns.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crashtest/ct_internal.h"
#include "storage/bytes.h"

uint64_t ct_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double ct_now_s(void)
{
	return (double)ct_now_ns() / 1e9;
}

/* ---- building ---------------------------------------------------------- */

static void grow(ct_buf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		abort(); /* the harness cannot go on without memory */
	b->p = p;
	b->cap = cap;
}

void ct_buf_free(ct_buf *b)
{
	free(b->p);
	*b = (ct_buf){0};
}

void ct_put_u8(ct_buf *b, uint8_t v)
{
	grow(b, 1);
	b->p[b->len++] = v;
}

void ct_put_u16(ct_buf *b, uint16_t v)
{
	grow(b, 2);
	put_le16(b->p + b->len, v);
	b->len += 2;
}

void ct_put_u32(ct_buf *b, uint32_t v)
{
	grow(b, 4);
	put_le32(b->p + b->len, v);
	b->len += 4;
}

void ct_put_u64(ct_buf *b, uint64_t v)
{
	grow(b, 8);
	put_le64(b->p + b->len, v);
	b->len += 8;
}

void ct_put_f64(ct_buf *b, double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof u);
	ct_put_u64(b, u);
}

void ct_put_bytes(ct_buf *b, const void *p, size_t n)
{
	grow(b, n);
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

void ct_put_str(ct_buf *b, const char *s)
{
	size_t n = strlen(s);
	ct_put_u32(b, (uint32_t)n);
	ct_put_bytes(b, s, n);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Header and body in one buffer so that a message up to PIPE_BUF is one
 * atomic write; longer ones are serialised by the caller (ct_run.mu). */
int ct_send(int fd, uint8_t kind, const ct_buf *body)
{
	ct_buf m = {0};
	int rc;
	ct_put_u32(&m, (uint32_t)(1 + (body ? body->len : 0)));
	ct_put_u8(&m, kind);
	if (body)
		ct_put_bytes(&m, body->p, body->len);
	rc = write_all(fd, m.p, m.len);
	ct_buf_free(&m);
	return rc;
}

/* ---- reading ----------------------------------------------------------- */

void ct_reader_free(ct_reader *r)
{
	ct_buf_free(&r->in);
	r->off = 0;
}

/* Reads more bytes into r->in: 1 got some, 0 end of stream, 2 timeout,
 * -1 error. */
static int fill_more(ct_reader *r, int timeout_ms)
{
	struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
	ssize_t n;
	if (r->off > 0 && r->off == r->in.len) {
		r->in.len = r->off = 0;
	} else if (r->off > (1u << 20)) {
		memmove(r->in.p, r->in.p + r->off, r->in.len - r->off);
		r->in.len -= r->off;
		r->off = 0;
	}
	for (;;) {
		int pr = poll(&pfd, 1, timeout_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return -1;
		if (pr == 0)
			return 2;
		break;
	}
	grow(&r->in, 65536);
	do
		n = read(r->fd, r->in.p + r->in.len, r->in.cap - r->in.len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (n == 0)
		return 0;
	r->in.len += (size_t)n;
	return 1;
}

int ct_recv(ct_reader *r, int timeout_ms, uint8_t *kind, const uint8_t **body,
	    size_t *len)
{
	for (;;) {
		size_t avail = r->in.len - r->off;
		if (avail >= 5) {
			uint32_t mlen = get_le32(r->in.p + r->off);
			if (mlen >= 1 && avail >= 4 + (size_t)mlen) {
				*kind = r->in.p[r->off + 4];
				*body = r->in.p + r->off + 5;
				*len = mlen - 1;
				r->off += 4 + mlen;
				return 1;
			}
		}
		if (r->eof)
			return 0; /* a partial message at the end is dropped */
		int rc = fill_more(r, timeout_ms);
		if (rc == 0)
			r->eof = true;
		else if (rc != 1)
			return rc;
	}
}

/* ---- parsing ------------------------------------------------------------- */

const uint8_t *ct_get_bytes(ct_cur *c, size_t n)
{
	static const uint8_t zero[8];
	if (c->bad || c->len - c->off < n) {
		c->bad = true;
		return n <= sizeof zero ? zero : NULL;
	}
	c->off += n;
	return c->p + c->off - n;
}

uint8_t ct_get_u8(ct_cur *c)
{
	return *ct_get_bytes(c, 1);
}

uint16_t ct_get_u16(ct_cur *c)
{
	return get_le16(ct_get_bytes(c, 2));
}

uint32_t ct_get_u32(ct_cur *c)
{
	return get_le32(ct_get_bytes(c, 4));
}

uint64_t ct_get_u64(ct_cur *c)
{
	return get_le64(ct_get_bytes(c, 8));
}

double ct_get_f64(ct_cur *c)
{
	uint64_t u = ct_get_u64(c);
	double d;
	memcpy(&d, &u, sizeof d);
	return d;
}

char *ct_get_str(ct_cur *c)
{
	uint32_t n = ct_get_u32(c);
	const uint8_t *p = ct_get_bytes(c, n);
	char *s = malloc((size_t)n + 1);
	if (!s)
		abort();
	if (p && !c->bad)
		memcpy(s, p, n);
	else
		n = 0;
	s[n] = '\0';
	return s;
}
