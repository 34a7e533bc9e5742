/*
 * .runner_system_id beside config.toml (see systemid.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "systemid.h"
#include "xmalloc.h"

int
systemid_valid(const char *s)
{
	if (strlen(s) != SYSTEMID_LEN || (s[0] != 's' && s[0] != 'r') ||
	    s[1] != '_')
		return 0;
	for (size_t i = 2; i < SYSTEMID_LEN; i++)
		if (strchr("0123456789abcdef", s[i]) == NULL || s[i] == '\0')
			return 0;
	return 1;
}

static void
make_id(char prefix, char *out, size_t outlen)
{
	unsigned char b[6];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		memset(b, 0, sizeof(b));
	snprintf(out, outlen, "%c_%02x%02x%02x%02x%02x%02x", prefix, b[0],
	    b[1], b[2], b[3], b[4], b[5]);
}

static char *
id_path(const char *config_path)
{
	const char *slash = config_path != NULL ? strrchr(config_path, '/') :
	    NULL;

	if (slash == NULL)
		return xstrdup(".runner_system_id");
	return xasprintf("%.*s/.runner_system_id",
	    (int)(slash - config_path), config_path);
}

int
systemid_load(const char *config_path, char *out, size_t outlen)
{
	char *path = id_path(config_path);
	char buf[64];
	FILE *fp;
	int fd;

	if ((fp = fopen(path, "r")) != NULL) {
		if (fgets(buf, sizeof(buf), fp) != NULL) {
			buf[strcspn(buf, "\r\n \t")] = '\0';
			if (systemid_valid(buf) && buf[0] == 's') {
				fclose(fp);
				free(path);
				snprintf(out, outlen, "%s", buf);
				return 0;
			}
		}
		fclose(fp);
	}
	make_id('s', out, outlen);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		size_t n = strlen(out);
		int ok = write(fd, out, n) == (ssize_t)n &&
		    write(fd, "\n", 1) == 1;

		if (close(fd) == 0 && ok) {
			free(path);
			return 0;
		}
		unlink(path);
	}
	free(path);
	make_id('r', out, outlen);
	return 1;
}
