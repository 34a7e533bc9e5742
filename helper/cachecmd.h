/*
 * flotilla-helper's local cache commands: cache-archiver, cache-extractor
 * and cache-init (/tmp/apis.md §E).  The cache lives on a volume mounted
 * in the helper container; nothing here talks to the network.
 */
#ifndef FL_CACHECMD_H
#define FL_CACHECMD_H

/* The commands: argv[0] is the command name; the exit status (0 or 1). */
int cachecmd_archiver_main(int argc, char **argv);
int cachecmd_extractor_main(int argc, char **argv);
int cachecmd_init_main(int argc, char **argv);

/*
 * Create path's parent directories (mode 0777 less the umask), like
 * `mkdir -p "$(dirname path)"`.  0 or FL_ERR_IO (errno set).
 */
int cachecmd_mkparents(const char *path);

#endif
