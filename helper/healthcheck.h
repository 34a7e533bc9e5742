/*
 * flotilla-helper health-check: wait until a service container's TCP
 * ports accept connections, as GitLab Runner's "wait-for-service"
 * container does before the job's script starts.
 */
#ifndef FL_HEALTHCHECK_H
#define FL_HEALTHCHECK_H

#include <stddef.h>

/* The command: argv[0] is the command name; the exit status (0 or 1). */
int healthcheck_main(int argc, char **argv);

/*
 * The ports to wait for, from an environment (NULL-terminated "K=V"
 * strings): every WAIT_FOR_SERVICE_<n>_TCP_PORT and the older
 * WAIT_FOR_SERVICE_TCP_PORT, in order, without duplicates, each a decimal
 * port 1..65535 (others are skipped).  Returns how many were stored in
 * ports[0..max).
 */
size_t healthcheck_ports(char *const *env, int *ports, size_t max);

#endif
