/*
 * flotilla-helper: the program in the helper image that the job scripts of
 * flotilla's Docker executor call for what a shell cannot do well: the
 * artifacts' zip and upload, the dependency download, the cache archive,
 * a service's health wait.  It stands where gitlab-runner-helper stands in
 * GitLab Runner; its command line is the contract of /tmp/apis.md §E (see
 * helper/README.md).  This file only dispatches.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "artifacts.h"
#include "cachecmd.h"
#include "healthcheck.h"
#include "log.h"

static const struct {
	const char *name;
	int (*main)(int argc, char **argv);
	int net;	/* needs libcurl */
} commands[] = {
	{ "artifacts-uploader", artifacts_uploader_main, 1 },
	{ "artifacts-downloader", artifacts_downloader_main, 1 },
	{ "cache-archiver", cachecmd_archiver_main, 0 },
	{ "cache-extractor", cachecmd_extractor_main, 0 },
	{ "cache-init", cachecmd_init_main, 0 },
	{ "health-check", healthcheck_main, 0 },
};

static void
usage(FILE *f)
{
	fputs("usage: flotilla-helper --version\n"
	    "       flotilla-helper artifacts-uploader --url URL --id JOBID [--name NAME]\n"
	    "           [--expire-in X] [--artifact-format zip] [--artifact-type TYPE]\n"
	    "           [--untracked] --path P [--path P ...] [--exclude P ...]\n"
	    "       flotilla-helper artifacts-downloader --url URL --id JOBID\n"
	    "       flotilla-helper cache-archiver --file FILE [--untracked] --path P ...\n"
	    "       flotilla-helper cache-extractor --file FILE\n"
	    "       flotilla-helper cache-init DIR...\n"
	    "       flotilla-helper health-check [--timeout DURATION]\n"
	    "The job token comes from FLOTILLA_HELPER_TOKEN, else CI_JOB_TOKEN.\n", f);
}

static void
version(void)
{
	struct utsname u;
	const char *arch = uname(&u) == 0 ? u.machine : "unknown";

	printf("Version:      %s\n"
	    "Git revision: %s\n"
	    "OS/Arch:      linux/%s\n"
	    "libcurl:      %s\n", FL_VERSION, FL_GIT_REV, arch,
	    curl_version_info(CURLVERSION_NOW)->version);
}

int
main(int argc, char **argv)
{
	int rc;

	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0 ||
	    strcmp(argv[1], "version") == 0) {
		version();
		return 0;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	log_set_format(LOG_FORMAT_RUNNER);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		if (commands[i].net && curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			log_fatal("libcurl initialisation failed");
		rc = commands[i].main(argc - 1, argv + 1);
		if (commands[i].net)
			curl_global_cleanup();
		log_release();
		return rc;
	}
	fprintf(stderr, "flotilla-helper: unknown command %s\n", argv[1]);
	usage(stderr);
	return 1;
}
