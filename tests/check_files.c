/* Odd files (issue 12, items 2-5): an empty path, a zero-length file, a file we may
 * not write, another application's WAL-mode file. Each is refused (or, asked for,
 * created) exactly, and a refused file is left as it was: same bytes, its -wal
 * untouched, no -wal, -shm or -lock of ours beside it. */
#include <sqlite3.h>
#include <sys/wait.h>

#include "check_sako.h"

/* ------------------------------------------------------------ helpers */

/* The file's bytes (NULL and *len = 0 when it does not exist). */
static unsigned char *slurp(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int side_exists(const char *path, const char *suffix)
{
    char buf[1100];
    snprintf(buf, sizeof buf, "%s%s", path, suffix);
    return access(buf, F_OK) == 0;
}

static void expect_no_side_files(const char *path)
{
    ck_assert_msg(!side_exists(path, "-lock"), "%s-lock left behind", path);
    ck_assert_msg(!side_exists(path, "-wal"), "%s-wal left behind", path);
    ck_assert_msg(!side_exists(path, "-shm"), "%s-shm left behind", path);
}

/* A snapshot of a file and its -wal, to prove a refusal changed neither. */
typedef struct {
    unsigned char *main, *wal;
    size_t main_len, wal_len;
} snapshot;

static snapshot take(const char *path)
{
    char wal[1100];
    snprintf(wal, sizeof wal, "%s-wal", path);
    snapshot s;
    s.main = slurp(path, &s.main_len);
    s.wal = slurp(wal, &s.wal_len);
    return s;
}

static void expect_same(const snapshot *a, const char *path)
{
    snapshot b = take(path);
    ck_assert_uint_eq(a->main_len, b.main_len);
    ck_assert_msg(a->main_len == 0 || memcmp(a->main, b.main, a->main_len) == 0,
                  "%s was modified", path);
    ck_assert_msg((a->wal == NULL) == (b.wal == NULL), "%s-wal appeared or vanished", path);
    ck_assert_uint_eq(a->wal_len, b.wal_len);
    ck_assert_msg(a->wal_len == 0 || memcmp(a->wal, b.wal, a->wal_len) == 0,
                  "%s-wal was modified", path);
    free(b.main);
    free(b.wal);
}

static void drop(snapshot *s)
{
    free(s->main);
    free(s->wal);
}

static int refuse(const char *path, const sako_options *o)
{
    sako_engine *e = (sako_engine *)(uintptr_t)1;
    int rc = sako_init(&e, path, o);
    ck_assert_ptr_null(e);
    ck_assert_int_gt((int)strlen(sako_errmsg()), 0);
    return rc;
}

/* Run sqlite statements on another application's file, closing without the
 * checkpoint on close when `keep_wal`, as an application that crashed (or keeps its
 * WAL) would leave it. */
static void foreign_exec(const char *path, const char *sql, int keep_wal)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    if (keep_wal)
        sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : "?");
    sqlite3_close(db);
}

static int64_t foreign_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* ------------------------------------------------------------ empty path */

/* "" used to open an SQLite temporary database: updates acknowledged, then gone, and
 * a file named "-lock" in the working directory. */
START_TEST(test_empty_path)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/emptypath-%ld", sk_tmp_dir(), (long)getpid());
    sk_mkdirs(dir);
    char cwd[1024];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(dir), 0);
    sako_engine *e = (sako_engine *)(uintptr_t)1;
    ck_assert_rc(sako_init(&e, "", NULL), SAKO_INVALID);
    ck_assert_ptr_null(e);
    ck_assert_msg(strstr(sako_errmsg(), "empty") != NULL, "message: %s", sako_errmsg());
    /* Twice: the second is refused the same way, not SAKO_BUSY. */
    sako_options o = sk_opts(3);
    ck_assert_rc(sako_init(&e, "", &o), SAKO_INVALID);
    ck_assert_msg(access("-lock", F_OK) != 0, "a file named -lock was created");
    ck_assert_int_eq(chdir(cwd), 0);
    rmdir(dir);
    /* NULL and ":memory:" remain the in-memory database. */
    ck_assert_ok(sako_init(&e, NULL, &o));
    sako_close(e);
    ck_assert_ok(sako_init(&e, ":memory:", &o));
    sako_close(e);
}
END_TEST

/* ------------------------------------------------------ zero-length file */

START_TEST(test_zero_length_refused)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "zero");
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    sako_options o = sk_opts(4);
    ck_assert_int_eq(refuse(path, &o), SAKO_CORRUPT);
    ck_assert_msg(strstr(sako_errmsg(), "empty") && strstr(sako_errmsg(), "create_empty"),
                  "message: %s", sako_errmsg());
    /* Still zero bytes, nothing beside it. */
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq((int)sb.st_size, 0);
    expect_no_side_files(path);
    /* A version-1 or version-2 options struct gets create_empty = 0 as well. */
    o.version = 2;
    ck_assert_int_eq(refuse(path, &o), SAKO_CORRUPT);
    o.version = 1;
    ck_assert_int_eq(refuse(path, &o), SAKO_CORRUPT);
    ck_assert_int_eq(refuse(path, NULL), SAKO_CORRUPT);
    /* An invalid flag is an invalid argument, and still changes nothing. */
    o = sk_opts(4);
    o.create_empty = 2;
    ck_assert_int_eq(refuse(path, &o), SAKO_INVALID);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq((int)sb.st_size, 0);
    expect_no_side_files(path);
    sk_remove_db(path);
}
END_TEST

/* With create_empty the empty file becomes a database, and it persists. */
START_TEST(test_zero_length_create)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "zerocreate");
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    sako_options o = sk_opts(5);
    o.create_empty = 1;
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    sako_event ev = sk_ev(7, 101, SAKO_EVENT_PURCHASE, 1000);
    ck_assert_ok(sako_update(e, &ev, 1));
    sako_options got = SAKO_OPTIONS_INIT;
    ck_assert_ok(sako_options_get(e, &got));
    ck_assert_int_eq(got.create_empty, 1);
    /* A version-2 caller gets its fields only: the byte after them is untouched. */
    unsigned char buf[sizeof(sako_options)];
    memset(buf, 0xA5, sizeof buf);
    ((sako_options *)buf)->version = 2;
    ck_assert_ok(sako_options_get(e, (sako_options *)buf));
    ck_assert_uint_eq(((sako_options *)buf)->version, 2);
    ck_assert_int_eq(((sako_options *)buf)->basket_gap_ms, got.basket_gap_ms);
    ck_assert_int_eq(buf[offsetof(sako_options, create_empty)], 0xA5);
    sako_close(e);
    /* Reopened without the flag: it is a database now, with the purchase. */
    o.create_empty = 0;
    e = sk_open_opts(path, &o);
    sako_item_info info;
    ck_assert_ok(sako_item_get(e, 101, &info));
    ck_assert(info.purchases == 1.0);
    sako_close(e);
    /* The flag does not make a non-empty file acceptable. */
    sk_remove_db(path);
    f = fopen(path, "wb");
    fputs("not a database at all, but long enough for a header", f);
    fclose(f);
    o.create_empty = 1;
    ck_assert_int_eq(refuse(path, &o), SAKO_CORRUPT);
    expect_no_side_files(path);
    sk_remove_db(path);
}
END_TEST

/* ----------------------------------------------------- read-only file */

/* A file this process may not write is refused before SQLite opens it: no -wal or
 * -shm appears. Root may write any file, so the check runs in a child that has
 * dropped to an unprivileged user (skipped when that is impossible). */
START_TEST(test_read_only_refused)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/readonly-%ld", sk_tmp_dir(), (long)getpid());
    sk_mkdirs(dir);
    chmod(dir, 0777); /* the unprivileged child may create side files: it must not */
    snprintf(path, sizeof path, "%s/ro.db", dir);
    sk_remove_db(path);
    sako_options o = sk_opts(6);
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    sako_close(e);
    ck_assert_int_eq(chmod(path, 0444), 0);
    char lock[700];
    snprintf(lock, sizeof lock, "%s-lock", path);
    unlink(lock);
    snapshot before = take(path);

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(2);
        sako_engine *c = NULL;
        int rc = sako_init(&c, path, &o);
        if (rc != SAKO_IO || c != NULL || !strstr(sako_errmsg(), "not writable"))
            _exit(1);
        _exit(0);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    if (WEXITSTATUS(status) != 2) {
        ck_assert_msg(WEXITSTATUS(status) == 0, "a read-only file was not refused with SAKO_IO");
        expect_same(&before, path);
        expect_no_side_files(path);
    }
    drop(&before);
    chmod(path, 0644);
    sk_remove_db(path);
    rmdir(dir);
}
END_TEST

/* ------------------------------------------- another application's WAL */

/* The case: the other application's main file holds only the header page
 * (everything else is in its -wal), so only SQLite can tell whose it is. Refusing
 * it must not checkpoint that -wal into the main file nor delete it. */
START_TEST(test_foreign_wal_untouched)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "foreignwal");
    foreign_exec(path, "PRAGMA journal_mode = WAL;", 0);
    foreign_exec(path, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);"
                       "INSERT INTO notes(body) VALUES ('a'), ('b'), ('c');"
                       "CREATE TABLE more(x); INSERT INTO more VALUES (1), (2);", 1);
    ck_assert(side_exists(path, "-wal"));
    snapshot before = take(path);
    ck_assert_uint_gt(before.wal_len, 0);
    sako_options o = sk_opts(7);
    ck_assert_int_eq(refuse(path, &o), SAKO_CORRUPT);
    ck_assert_msg(strstr(sako_errmsg(), "another application"), "message: %s", sako_errmsg());
    expect_same(&before, path);
    ck_assert_msg(!side_exists(path, "-lock"), "%s-lock left behind", path);
    /* Twice, and with create_empty: the same. */
    o.create_empty = 1;
    ck_assert_int_eq(refuse(path, &o), SAKO_CORRUPT);
    expect_same(&before, path);
    ck_assert(!side_exists(path, "-lock"));
    drop(&before);
    ck_assert_int_eq(foreign_int(path, "SELECT count(*) FROM notes"), 3);
    sk_remove_db(path);

    /* Tables in the main file and more in the -wal: refused from the header alone,
     * before SQLite opens it. */
    sk_tmp_path(path, sizeof path, "foreignwal2");
    foreign_exec(path, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);"
                       "INSERT INTO notes(body) VALUES ('a');", 0);
    foreign_exec(path, "PRAGMA journal_mode = WAL; INSERT INTO notes(body) VALUES ('b');", 1);
    ck_assert(side_exists(path, "-wal"));
    before = take(path);
    ck_assert_int_eq(refuse(path, NULL), SAKO_CORRUPT);
    expect_same(&before, path);
    ck_assert(!side_exists(path, "-lock"));
    drop(&before);
    ck_assert_int_eq(foreign_int(path, "SELECT count(*) FROM notes"), 2);
    sk_remove_db(path);

    /* An application id of its own, in rollback-journal mode. */
    sk_tmp_path(path, sizeof path, "foreignid");
    foreign_exec(path, "PRAGMA application_id = 1234; PRAGMA user_version = 1;", 0);
    before = take(path);
    ck_assert_int_eq(refuse(path, NULL), SAKO_CORRUPT);
    expect_same(&before, path);
    expect_no_side_files(path);
    drop(&before);
    sk_remove_db(path);
}
END_TEST

/* An empty SQLite database (no application id, no tables) is still ours to create
 * in, as before; a libsako file whose crash left its schema in the -wal still opens. */
START_TEST(test_empty_sqlite_and_own_wal)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "emptysqlite");
    foreign_exec(path, "PRAGMA journal_mode = WAL;", 0);
    sako_options o = sk_opts(8);
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    sako_close(e);
    sk_remove_db(path);

    /* A fresh libsako file killed before its first checkpoint: the main file has only
     * the WAL header page, the schema and the catalog are in the -wal. */
    sk_tmp_path(path, sizeof path, "ownwal");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        sako_engine *c = NULL;
        if (sako_init(&c, path, &o) != SAKO_OK)
            _exit(1);
        sako_category cat = {1, 0, "Dairy"};
        sako_item it = {101, 1, 1, 1000};
        if (sako_categories_upsert(c, &cat, 1) || sako_items_upsert(c, &it, 1))
            _exit(1);
        _exit(0); /* no sako_close: no checkpoint */
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert(side_exists(path, "-wal"));
    e = sk_open_opts(path, &o);
    sako_item_info info;
    ck_assert_ok(sako_item_get(e, 101, &info));
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* ------------------------------------------------------------ lock files */

/* A closed database with the demo catalog and no lock file beside it, so that a test
 * can tell whether a refused open leaves one behind. */
static void closed_db_without_lock(const char *path, const sako_options *o)
{
    sako_engine *e = sk_open_opts(path, o);
    sk_catalog(e);
    sako_close(e);
    char lock[600];
    snprintf(lock, sizeof lock, "%s-lock", path);
    unlink(lock);
}

/* A refusal after the lock was taken (here a newer schema) removes the lock file it
 * created; one that finds another engine's lock leaves it, and that engine goes on. */
START_TEST(test_lock_file_removed_on_refusal)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "lockrm");
    sako_options o = sk_opts(9);
    closed_db_without_lock(path, &o);
    foreign_exec(path, "PRAGMA user_version = 99;", 0);
    ck_assert_int_eq(refuse(path, &o), SAKO_VERSION);
    ck_assert_msg(!side_exists(path, "-lock"), "%s-lock left behind", path);
    foreign_exec(path, "PRAGMA user_version = " SK_STR(SK_SCHEMA_VERSION) ";", 0);

    /* Held by another engine: SAKO_BUSY, its lock file stays, it keeps working, and
     * after it closes the file opens again. */
    sako_engine *e = sk_open_opts(path, &o);
    ck_assert(side_exists(path, "-lock"));
    ck_assert_int_eq(refuse(path, &o), SAKO_BUSY);
    ck_assert(side_exists(path, "-lock"));
    sako_event ev = sk_ev(7, 101, SAKO_EVENT_CLICK, 1000);
    ck_assert_ok(sako_update(e, &ev, 1));
    ck_assert_int_eq(refuse(path, &o), SAKO_BUSY);
    sako_close(e);
    e = sk_open_opts(path, &o);
    sako_item_info info;
    ck_assert_ok(sako_item_get(e, 101, &info));
    ck_assert(info.clicks == 1.0);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* A file whose header claims an older schema than its tables hold (found by fuzz_open):
 * the migration's SQL fails on a table that already exists. That is a damaged or forged
 * file, SAKO_CORRUPT, not an internal error; the failed migration changes nothing. */
START_TEST(test_header_older_than_tables)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "oldhdr");
    sako_options o = sk_opts(9);
    closed_db_without_lock(path, &o);
    foreign_exec(path, "PRAGMA user_version = 4;", 0);
    ck_assert_int_eq(refuse(path, &o), SAKO_CORRUPT);
    ck_assert_msg(strstr(sako_errmsg(), "schema version 4") != NULL, "%s", sako_errmsg());
    ck_assert_int_eq(foreign_int(path, "PRAGMA user_version"), 4);
    ck_assert_msg(!side_exists(path, "-lock"), "%s-lock left behind", path);
    foreign_exec(path, "PRAGMA user_version = " SK_STR(SK_SCHEMA_VERSION) ";", 0);
    sako_engine *e = sk_open_opts(path, &o);
    sako_item_info info;
    ck_assert_ok(sako_item_get(e, 101, &info));
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

Suite *suite_files(void)
{
    Suite *s = suite_create("files");
    TCase *tc = tcase_create("odd");
    tcase_add_test(tc, test_empty_path);
    tcase_add_test(tc, test_zero_length_refused);
    tcase_add_test(tc, test_zero_length_create);
    tcase_add_test(tc, test_read_only_refused);
    tcase_add_test(tc, test_foreign_wal_untouched);
    tcase_add_test(tc, test_empty_sqlite_and_own_wal);
    tcase_add_test(tc, test_lock_file_removed_on_refusal);
    tcase_add_test(tc, test_header_older_than_tables);
    suite_add_tcase(s, tc);
    return s;
}
