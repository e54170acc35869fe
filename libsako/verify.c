/* sako_verify: an operator's check of a database file (or a backup) that changes
 * nothing: SQLite's integrity_check, then every logged batch against its checksum. */
#include <string.h>

#include "sako.h"
#include "error_internal.h"
#include "store_internal.h"

int sako_verify(const char *path, sako_verify_report *out)
{
    if (!path || !out)
        return sako__error(SAKO_MISUSE, "sako_verify: NULL path or report");
    memset(out, 0, sizeof *out);
    if (!*path || strcmp(path, ":memory:") == 0)
        return sako__error(SAKO_INVALID, "sako_verify: give the path of a database file");
    sako__error_clear();
    sako_store_verify v;
    int rc = sako__store_verify(path, &v);
    out->n_batches = v.n_batches;
    out->n_checksummed = v.n_checksummed;
    out->n_events = v.n_events;
    out->compact_batch = v.compact_batch;
    out->n_checkpoint_chunks = v.n_chunks;
    if (rc == SAKO_OK)
        sako__error_clear();
    return rc;
}
