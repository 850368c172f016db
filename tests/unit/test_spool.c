/*
 * test_spool.c - the agent's spool: round trip, acknowledgement and
 * compaction, a torn tail cut at every byte of the last record, a corrupt
 * checksum, a foreign file left alone, and the single-writer lock.
 */
#include "spool.h"
#include "testlib.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture_s {
    char dir[64];
    char path[128];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = qr_xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/qr-spool-test.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/spool", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *p = qr_xasprintf("%s/%s", f->dir, e->d_name);
        unlink(p);
        free(p);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (int64_t)st.st_size;
}

/* Number of "<spool>.torn-*" files next to the spool, and the size of the
 * last one found. */
static int torn_copies(const fixture_t *f, int64_t *size)
{
    DIR *d = opendir(f->dir);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "spool.torn-", 11) != 0)
            continue;
        char *p = qr_xasprintf("%s/%s", f->dir, e->d_name);
        *size = file_size(p);
        unlink(p);
        free(p);
        n++;
    }
    closedir(d);
    return n;
}

static void put_str(qr_spool_t *sp, const char *s, uint64_t *id)
{
    assert_int_equal(qr_spool_put(sp, s, strlen(s), id), 0);
}

static void test_crc32_known_value(void **state)
{
    (void)state;
    /* The standard check value of CRC-32/ISO-HDLC (zlib's crc32). */
    assert_int_equal(qr_spool_crc32(0, "123456789", 9), 0xCBF43926u);
    /* Incremental use gives the same answer. */
    assert_int_equal(qr_spool_crc32(qr_spool_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
}

static void test_round_trip(void **state)
{
    fixture_t *f = *state;
    qr_spool_t sp;
    uint64_t a, b, c;

    assert_int_equal(qr_spool_open(&sp, f->path, 0), 0);
    assert_int_equal(sp.npending, 0);
    assert_int_equal(file_size(f->path), QR_SPOOL_HEADER_SIZE);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    put_str(&sp, "{\"label\":\"x\"}", &a);
    put_str(&sp, "", &b); /* empty payloads are legal */
    assert_int_equal(qr_spool_append(&sp, "third\0with nul", 14, &c), 0);
    assert_int_equal(qr_spool_sync(&sp), 0);
    assert_true(a < b && b < c);
    qr_spool_close(&sp);

    assert_int_equal(qr_spool_open(&sp, f->path, 0), 0);
    assert_int_equal(sp.torn_offset, -1);
    assert_int_equal(sp.npending, 3);
    assert_int_equal(sp.pending[0].id, a);
    assert_string_equal(sp.pending[0].payload, "{\"label\":\"x\"}");
    assert_int_equal(sp.pending[1].len, 0);
    assert_int_equal(sp.pending[2].len, 14);
    assert_memory_equal(sp.pending[2].payload, "third\0with nul", 14);
    assert_non_null(qr_spool_find(&sp, b));
    uint64_t d;
    put_str(&sp, "fourth", &d);
    assert_true(d > c); /* ids keep increasing across restarts */
    qr_spool_close(&sp);
}

static void test_ack_removes_and_truncates(void **state)
{
    fixture_t *f = *state;
    qr_spool_t sp;
    uint64_t id[3];

    assert_int_equal(qr_spool_open(&sp, f->path, 0), 0);
    for (int i = 0; i < 3; i++)
        put_str(&sp, "result", &id[i]);
    assert_int_equal(qr_spool_ack(&sp, id[1]), 0);
    assert_int_equal(qr_spool_ack(&sp, id[1]), 0); /* twice: no-op */
    assert_int_equal(qr_spool_ack(&sp, 999), 0);   /* unknown: no-op */
    assert_int_equal(sp.npending, 2);
    assert_null(qr_spool_find(&sp, id[1]));
    qr_spool_close(&sp);

    assert_int_equal(qr_spool_open(&sp, f->path, 0), 0);
    assert_int_equal(sp.npending, 2);
    assert_int_equal(sp.pending[0].id, id[0]);
    assert_int_equal(sp.pending[1].id, id[2]);
    assert_int_equal(qr_spool_ack(&sp, id[0]), 0);
    assert_int_equal(qr_spool_ack(&sp, id[2]), 0);
    assert_int_equal(sp.npending, 0);
    /* Everything acknowledged: the file is back to its header. */
    assert_int_equal(file_size(f->path), QR_SPOOL_HEADER_SIZE);
    qr_spool_close(&sp);

    assert_int_equal(qr_spool_open(&sp, f->path, 0), 0);
    assert_int_equal(sp.npending, 0);
    assert_int_equal(sp.torn_offset, -1);
    qr_spool_close(&sp);
}

static void test_compaction(void **state)
{
    fixture_t *f = *state;
    qr_spool_t sp;
    uint64_t keep, id;
    char payload[64];

    assert_int_equal(qr_spool_open(&sp, f->path, 0), 0);
    put_str(&sp, "kept", &keep);
    for (int i = 0; i < 3000; i++) {
        snprintf(payload, sizeof payload, "result %d", i);
        assert_int_equal(qr_spool_append(&sp, payload, strlen(payload), &id), 0);
        assert_int_equal(qr_spool_ack(&sp, id), 0);
    }
    assert_int_equal(sp.npending, 1);
    /* Rewritten at least once: 3000 results and acks would take ~135 kB;
     * between compactions at most ~1024 of each accumulate. */
    assert_true(file_size(f->path) < 2 * 1024 * (QR_SPOOL_RECORD_HEAD + 12));
    assert_int_equal(file_size(f->path), sp.size);
    put_str(&sp, "after", &id);
    qr_spool_close(&sp);

    assert_int_equal(qr_spool_open(&sp, f->path, 0), 0);
    assert_int_equal(sp.torn_offset, -1);
    assert_int_equal(sp.npending, 2);
    assert_string_equal(sp.pending[0].payload, "kept");
    assert_int_equal(sp.pending[0].id, keep);
    assert_string_equal(sp.pending[1].payload, "after");
    qr_spool_close(&sp);
}

/* Writes two results, then a third whose record is cut after k bytes (as a
 * power loss mid-write would leave it), for every k: the two are kept, the
 * tear is reported, saved aside and cut, and the spool works on. */
static void test_torn_tail_every_offset(void **state)
{
    fixture_t *f = *state;
    const char *last = "{\"lease\":\"17\",\"label\":\"positive\"}";
    qr_spool_t sp;
    uint64_t id;

    assert_int_equal(qr_spool_open(&sp, f->path, 0), 0);
    put_str(&sp, "first", &id);
    put_str(&sp, "second", &id);
    int64_t good = sp.size;
    put_str(&sp, last, &id);
    int64_t full = sp.size;
    qr_spool_close(&sp);
    assert_int_equal(full - good, QR_SPOOL_RECORD_HEAD + (int64_t)strlen(last));

    char *image = qr_xmalloc((size_t)full);
    int fd = open(f->path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, image, (size_t)full), full);
    close(fd);

    for (int64_t k = 0; k <= full - good; k++) {
        fd = open(f->path, O_WRONLY | O_TRUNC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, image, (size_t)(good + k)), good + k);
        close(fd);

        /* Read-only: reports, touches nothing. */
        assert_int_equal(qr_spool_open(&sp, f->path, QR_SPOOL_READONLY), 0);
        assert_int_equal(sp.torn_offset, k == 0 || k == full - good ? -1 : good);
        qr_spool_close(&sp);
        assert_int_equal(file_size(f->path), good + k);

        assert_int_equal(qr_spool_open(&sp, f->path, 0), 0);
        int64_t copy = -1;
        if (k == 0 || k == full - good) {
            assert_int_equal(sp.torn_offset, -1);
            assert_int_equal(sp.npending, k == 0 ? 2 : 3);
            assert_int_equal(torn_copies(f, &copy), 0);
        } else {
            assert_int_equal(sp.torn_offset, good);
            assert_int_equal(sp.torn_bytes, k);
            assert_true(sp.torn_reason[0] != '\0');
            assert_int_equal(sp.npending, 2);
            assert_int_equal(file_size(f->path), good);
            assert_int_equal(torn_copies(f, &copy), 1);
            assert_int_equal(copy, k);
        }
        assert_string_equal(sp.pending[0].payload, "first");
        assert_string_equal(sp.pending[1].payload, "second");
        /* Appending after a repaired tear gives a clean file. */
        put_str(&sp, "again", &id);
        qr_spool_close(&sp);
        assert_int_equal(qr_spool_open(&sp, f->path, QR_SPOOL_READONLY), 0);
        assert_int_equal(sp.torn_offset, -1);
        assert_int_equal(sp.npending, k == full - good ? 4 : 3);
        assert_string_equal(sp.pending[sp.npending - 1].payload, "again");
        qr_spool_close(&sp);
    }
    free(image);
}

static void test_corrupt_checksum(void **state)
{
    fixture_t *f = *state;
    qr_spool_t sp;
    uint64_t id;

    assert_int_equal(qr_spool_open(&sp, f->path, 0), 0);
    put_str(&sp, "one", &id);
    int64_t second = sp.size;
    put_str(&sp, "two", &id);
    put_str(&sp, "three", &id);
    int64_t full = sp.size;
    qr_spool_close(&sp);

    /* Flip one payload bit of the second record. */
    int fd = open(f->path, O_RDWR);
    assert_true(fd >= 0);
    char c;
    off_t at = (off_t)(second + QR_SPOOL_RECORD_HEAD + 1);
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0x10;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    close(fd);

    assert_int_equal(qr_spool_open(&sp, f->path, 0), 0);
    assert_int_equal(sp.torn_offset, second);
    assert_int_equal(sp.torn_bytes, full - second);
    assert_string_equal(sp.torn_reason, "checksum mismatch");
    assert_int_equal(sp.npending, 1);
    assert_string_equal(sp.pending[0].payload, "one");
    assert_non_null(sp.torn_copy);
    qr_spool_close(&sp);
    int64_t copy = 0;
    assert_int_equal(torn_copies(f, &copy), 1);
    assert_int_equal(copy, full - second);

    /* An implausible length is caught the same way, before any allocation. */
    assert_int_equal(qr_spool_open(&sp, f->path, 0), 0);
    int64_t bad = sp.size;
    qr_spool_close(&sp);
    fd = open(f->path, O_WRONLY | O_APPEND);
    unsigned char junk[QR_SPOOL_RECORD_HEAD] = {0xff, 0xff, 0xff, 0x7f};
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    assert_int_equal(qr_spool_open(&sp, f->path, 0), 0);
    assert_int_equal(sp.torn_offset, bad);
    assert_non_null(strstr(sp.torn_reason, "length"));
    qr_spool_close(&sp);
    assert_int_equal(torn_copies(f, &copy), 1);
}

static void test_foreign_file_untouched(void **state)
{
    fixture_t *f = *state;
    qr_spool_t sp;
    int fd = open(f->path, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hello world\n", 12), 12);
    close(fd);
    assert_int_equal(qr_spool_open(&sp, f->path, 0), QR_EINVAL);
    assert_non_null(strstr(sp.errstr, "not a quorum-agent spool"));
    assert_int_equal(file_size(f->path), 12);
}

static void test_single_writer(void **state)
{
    fixture_t *f = *state;
    qr_spool_t a, b;
    uint64_t id;
    assert_int_equal(qr_spool_open(&a, f->path, 0), 0);
    put_str(&a, "mine", &id);
    assert_int_equal(qr_spool_open(&b, f->path, 0), -EWOULDBLOCK);
    assert_non_null(strstr(b.errstr, "in use"));
    /* A reader may look while the writer runs. */
    assert_int_equal(qr_spool_open(&b, f->path, QR_SPOOL_READONLY), 0);
    assert_int_equal(b.npending, 1);
    uint64_t none;
    assert_int_equal(qr_spool_append(&b, "x", 1, &none), QR_EINVAL);
    qr_spool_close(&b);
    qr_spool_close(&a);
    assert_int_equal(qr_spool_open(&b, f->path, 0), 0);
    qr_spool_close(&b);
}

static void test_oversize_refused(void **state)
{
    fixture_t *f = *state;
    qr_spool_t sp;
    uint64_t id;
    size_t n = QR_SPOOL_MAX_PAYLOAD + 1;
    char *big = qr_xcalloc(1, n);
    assert_int_equal(qr_spool_open(&sp, f->path, 0), 0);
    assert_int_equal(qr_spool_append(&sp, big, n, &id), QR_ETOOBIG);
    assert_int_equal(sp.npending, 0);
    assert_int_equal(file_size(f->path), QR_SPOOL_HEADER_SIZE);
    qr_spool_close(&sp);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_known_value),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_removes_and_truncates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_checksum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_file_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
