/* The checksummed event log (issue 12, item 1): CRC-32C itself; every byte flipped
 * inside a logged batch is caught at open and by sako_verify, naming the batch;
 * sako_verify changes nothing; a 0.2 file keeps working, its old batches unchecked. */
#include <sqlite3.h>
#include <sys/wait.h>

#include "check_sako.h"
#include "checksum_internal.h"

/* The bytes of a blob column of one batch. */
static unsigned char *batch_blob(const char *path, const char *column, int64_t seq, size_t *len)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char q[128];
    snprintf(q, sizeof q, "SELECT %s FROM event_batches WHERE seq = %lld", column, (long long)seq);
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    *len = (size_t)sqlite3_column_bytes(st, 0);
    unsigned char *out = malloc(*len + 1);
    memcpy(out, sqlite3_column_blob(st, 0), *len);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static int side(const char *path, const char *suffix)
{
    char buf[1100];
    snprintf(buf, sizeof buf, "%s%s", path, suffix);
    return access(buf, F_OK) == 0;
}

/* Three batches: 1 and 3 plain, 2 a small order batch (events and order ids). */
static void make_log(const char *path)
{
    sako_options o = sk_opts(21);
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    sako_event a[4] = {sk_ev(1, 101, SAKO_EVENT_IMPRESSION, 1000), sk_ev(1, 101, SAKO_EVENT_CLICK, 1001),
                       sk_ev(2, 102, SAKO_EVENT_IMPRESSION, 1002), sk_ev(3, 201, SAKO_EVENT_PURCHASE, 1003)};
    ck_assert_ok(sako_update(e, a, 4));
    sako_event b[3] = {sk_ev(4, 111, SAKO_EVENT_PURCHASE, 2000), sk_ev(4, 112, SAKO_EVENT_PURCHASE, 2000),
                       sk_ev(5, 113, SAKO_EVENT_PURCHASE, 2001)};
    int64_t orders[3] = {77, 77, 78};
    ck_assert_ok(sako_update_orders(e, b, orders, 3));
    sako_event c[2] = {sk_ev(6, 203, SAKO_EVENT_IMPRESSION, 3000), sk_ev(6, 203, SAKO_EVENT_CART, 3001)};
    ck_assert_ok(sako_update(e, c, 2));
    sako_close(e);
    ck_assert(!side(path, "-wal"));
}

/* ------------------------------------------------------------ CRC-32C */

START_TEST(test_crc32c_vectors)
{
    /* The check value of CRC-32C, and RFC 3720's test vectors (iSCSI). */
    ck_assert_uint_eq(sako__checksum_update(0, "123456789", 9), 0xE3069283u);
    unsigned char buf[48];
    memset(buf, 0, 32);
    ck_assert_uint_eq(sako__checksum_update(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xFF, 32);
    ck_assert_uint_eq(sako__checksum_update(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)i;
    ck_assert_uint_eq(sako__checksum_update(0, buf, 32), 0x46DD794Eu);
    ck_assert_uint_eq(sako__checksum_update(0, buf, 0), 0);
    /* Any split gives the one-shot value (the 8-byte steps and the tail agree). */
    for (int i = 0; i < 48; i++)
        buf[i] = (unsigned char)(i * 37 + 11);
    uint32_t whole = sako__checksum_update(0, buf, 48);
    for (size_t cut = 0; cut <= 48; cut++)
        ck_assert_uint_eq(sako__checksum_update(sako__checksum_update(0, buf, cut), buf + cut, 48 - cut),
                          whole);
}
END_TEST

/* --------------------------------------------------------- byte flips */

/* Flip every byte of one batch's blob where it lies in the file: each flip is refused
 * at open and by sako_verify, naming the batch; the file restored opens again. */
static void flip_all(const char *path, const char *column, int64_t seq)
{
    size_t blen, flen;
    unsigned char *blob = batch_blob(path, column, seq, &blen);
    unsigned char *file = sk_read_file(path, &flen);
    unsigned char *at = memmem(file, flen, blob, blen);
    ck_assert_msg(at != NULL, "batch %lld's %s not found in the file", (long long)seq, column);
    ck_assert_ptr_null(memmem(at + 1, flen - (size_t)(at + 1 - file), blob, blen));
    char name[32];
    snprintf(name, sizeof name, "batch %lld", (long long)seq);
    sako_options o = sk_opts(21);
    for (size_t i = 0; i < blen; i++) {
        unsigned char keep = at[i];
        at[i] ^= (unsigned char)(1u << (i % 8));
        sk_write_file(path, file, flen);
        sako_engine *e = (sako_engine *)(uintptr_t)1;
        int rc = sako_init(&e, path, &o);
        ck_assert_msg(rc == SAKO_CORRUPT, "%s byte %zu flipped: sako_init = %d (%s)", column, i, rc,
                      sako_errmsg());
        ck_assert_ptr_null(e);
        ck_assert_msg(strstr(sako_errmsg(), name), "message does not name %s: %s", name,
                      sako_errmsg());
        sako_verify_report r;
        ck_assert_rc(sako_verify(path, &r), SAKO_CORRUPT);
        ck_assert_msg(strstr(sako_errmsg(), name), "verify: %s", sako_errmsg());
        at[i] = keep;
    }
    sk_write_file(path, file, flen);
    sako_engine *e = sk_open_opts(path, &o);
    sako_close(e);
    free(blob);
    free(file);
}

START_TEST(test_every_flip_in_a_batch_caught)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "flips");
    make_log(path);
    flip_all(path, "events", 1);
    flip_all(path, "events", 2);
    flip_all(path, "order_ids", 2);
    flip_all(path, "events", 3);
    sk_remove_db(path);
}
END_TEST

/* What the checksum covers besides the blobs, changed through SQL (so SQLite's own
 * checks pass): the batch's size, time and place, its checksum gone. */
START_TEST(test_row_changes_caught)
{
    static const char *const damage[] = {
        "UPDATE event_batches SET created_at = created_at + 1 WHERE seq = 2",
        "UPDATE event_batches SET checksum = NULL WHERE seq = 2",
        "UPDATE event_batches SET checksum = checksum + 1 WHERE seq = 2",
        "UPDATE event_batches SET order_ids = NULL WHERE seq = 2",
        "UPDATE event_batches SET seq = 4 WHERE seq = 2",
        "UPDATE event_batches SET n_events = 0, events = x'' WHERE seq = 2",
    };
    for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
        char path[512];
        sk_tmp_path(path, sizeof path, "rows");
        make_log(path);
        sk_sql_exec(path, damage[i]);
        sako_engine *e = (sako_engine *)(uintptr_t)1;
        sako_options o = sk_opts(21);
        ck_assert_msg(sako_init(&e, path, &o) == SAKO_CORRUPT, "%s: not refused", damage[i]);
        ck_assert_msg(strstr(sako_errmsg(), "batch"), "%s: %s", damage[i], sako_errmsg());
        sako_verify_report r;
        ck_assert_rc(sako_verify(path, &r), SAKO_CORRUPT);
        sk_remove_db(path);
    }
}
END_TEST

/* ---------------------------------------------------------- sako_verify */

START_TEST(test_verify_changes_nothing)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "verify");
    make_log(path);
    char lock[600];
    snprintf(lock, sizeof lock, "%s-lock", path);
    unlink(lock);
    size_t len0, len1;
    unsigned char *before = sk_read_file(path, &len0);
    sako_verify_report r;
    memset(&r, 0xAB, sizeof r);
    ck_assert_ok(sako_verify(path, &r));
    ck_assert_uint_eq(r.n_batches, 3);
    ck_assert_uint_eq(r.n_checksummed, 3);
    ck_assert_uint_eq(r.n_events, 9);
    unsigned char *after = sk_read_file(path, &len1);
    ck_assert_uint_eq(len0, len1);
    ck_assert(memcmp(before, after, len0) == 0);
    ck_assert(!side(path, "-wal") && !side(path, "-shm") && !side(path, "-lock"));
    free(before);
    free(after);

    /* While an engine has it open and writes: a consistent snapshot, the engine
     * unaffected. */
    sako_options o = sk_opts(21);
    sako_engine *e = sk_open_opts(path, &o);
    sako_event ev = sk_ev(9, 101, SAKO_EVENT_CLICK, 5000);
    ck_assert_ok(sako_update(e, &ev, 1));
    ck_assert_ok(sako_verify(path, &r));
    ck_assert_uint_eq(r.n_batches, 4);
    ck_assert_ok(sako_update(e, &ev, 1));
    sako_close(e);
    ck_assert_ok(sako_verify(path, &r));
    ck_assert_uint_eq(r.n_batches, 5);

    /* Arguments and other files. */
    ck_assert_rc(sako_verify(NULL, &r), SAKO_MISUSE);
    ck_assert_rc(sako_verify(path, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_verify("", &r), SAKO_INVALID);
    ck_assert_rc(sako_verify(":memory:", &r), SAKO_INVALID);
    sk_remove_db(path);
    ck_assert_rc(sako_verify(path, &r), SAKO_IO);
    ck_assert(!side(path, "-lock"));
    sk_sql_exec(path, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    ck_assert_rc(sako_verify(path, &r), SAKO_CORRUPT);
    sk_remove_db(path);
}
END_TEST

/* A backup on read-only media: no lock file can be made, and none is needed. The
 * check runs in a child dropped to an unprivileged user (root writes anywhere). */
START_TEST(test_verify_read_only_directory)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/verify-ro-%ld", sk_tmp_dir(), (long)getpid());
    sk_mkdirs(dir);
    snprintf(path, sizeof path, "%s/backup.db", dir);
    sk_remove_db(path);
    make_log(path);
    char lock[700];
    snprintf(lock, sizeof lock, "%s-lock", path);
    unlink(lock);
    chmod(dir, 0555);
    chmod(path, 0444);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(2);
        sako_verify_report r;
        _exit(sako_verify(path, &r) == SAKO_OK && r.n_checksummed == 3 ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    chmod(dir, 0755);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) != 1);
    ck_assert(!side(path, "-wal") && !side(path, "-shm") && !side(path, "-lock"));
    chmod(path, 0644);
    sk_remove_db(path);
    rmdir(dir);
}
END_TEST

/* A 0.2 file (schema 2, no checksums) opens, migrates, and from then on every new
 * batch is checked; its old batches are counted as unchecked. */
START_TEST(test_schema2_batches_unchecked)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "schema2sum");
    make_log(path);
    sk_sql_exec(path, SK_SCHEMA3_TO_2);
    sako_verify_report r;
    ck_assert_ok(sako_verify(path, &r));
    ck_assert_uint_eq(r.n_batches, 3);
    ck_assert_uint_eq(r.n_checksummed, 0);
    sako_options o = sk_opts(21);
    sako_engine *e = sk_open_opts(path, &o);
    sako_event ev = sk_ev(9, 101, SAKO_EVENT_CLICK, 5000);
    ck_assert_ok(sako_update(e, &ev, 1));
    sako_close(e);
    ck_assert_ok(sako_verify(path, &r));
    ck_assert_uint_eq(r.n_batches, 4);
    ck_assert_uint_eq(r.n_checksummed, 1);
    /* The new batch is checked; an old one losing nothing it never had is fine. */
    sk_sql_exec(path, "UPDATE event_batches SET checksum = NULL WHERE seq = 4");
    ck_assert_rc(sako_verify(path, &r), SAKO_CORRUPT);
    ck_assert_msg(strstr(sako_errmsg(), "batch 4"), "%s", sako_errmsg());
    sk_remove_db(path);
}
END_TEST

/* A batch damaged while an engine has the file open: the retrain (which replays the
 * log on its own connection) refuses it naming the batch, and the engine keeps
 * serving the state it had. */
START_TEST(test_retrain_refuses_damage)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "retraindamage");
    make_log(path);
    sako_options o = sk_opts(21);
    sako_engine *e = sk_open_opts(path, &o);
    sako_item_info before, after;
    ck_assert_ok(sako_item_get(e, 101, &before));
    sk_sql_exec(path, "UPDATE event_batches SET events = zeroblob(length(events)) WHERE seq = 1;");
    ck_assert_rc(sako_retrain(e), SAKO_CORRUPT);
    ck_assert_msg(strstr(sako_errmsg(), "batch 1 ") != NULL, "message: %s", sako_errmsg());
    ck_assert_ok(sako_item_get(e, 101, &after));
    ck_assert(memcmp(&before, &after, sizeof before) == 0);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

Suite *suite_checksum(void)
{
    Suite *s = suite_create("checksum");
    TCase *tc = tcase_create("log");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_crc32c_vectors);
    tcase_add_test(tc, test_every_flip_in_a_batch_caught);
    tcase_add_test(tc, test_row_changes_caught);
    tcase_add_test(tc, test_verify_changes_nothing);
    tcase_add_test(tc, test_verify_read_only_directory);
    tcase_add_test(tc, test_schema2_batches_unchecked);
    tcase_add_test(tc, test_retrain_refuses_damage);
    suite_add_tcase(s, tc);
    return s;
}
