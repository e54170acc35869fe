/* Model versions (versions.c). */
#ifndef SAKO_VERSIONS_INTERNAL_H
#define SAKO_VERSIONS_INTERNAL_H

struct sako_engine;

/* At open: the active version's stored model must pass its checksum, and whether
 * prior refreshes are held back is read from the versions. */
int sako__versions_load(struct sako_engine *e);

#endif
