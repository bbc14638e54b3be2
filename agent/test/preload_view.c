/* Test helper: runs a program with the agent in /etc/ld.so.preload, as a system-wide install
 * would, but only in a private mount namespace, so the machine's /etc is never written (other
 * tests run on it meanwhile). Setuid and file-capability programs ignore LD_PRELOAD; this is
 * the only way the agent reaches them.
 *   preload_view WORK LIB QOSD_DIR|- PROG ARGS...
 * In a new mount namespace (nothing propagates out): /etc is an overlay whose upper layer, in
 * WORK/upper (WORK/work is overlayfs's own), holds ld.so.preload naming LIB; /run is an empty
 * tmpfs, so no daemon of the machine answers on the default socket path, and with QOSD_DIR
 * /run/qosd is that directory (bind-mounted: its agent.sock is the default socket path). Then
 * PROG is executed. Needs root. Exit status 125 if the view cannot be set up. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what)
{
	fprintf(stderr, "preload_view: %s: %s\n", what, strerror(errno));
	return 125;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s WORK LIB QOSD_DIR|- PROG ARGS...\n", argv[0]);
		return 2;
	}
	const char *work = argv[1], *lib = argv[2], *qosd = argv[3];
	char upper[1024], wdir[1024], preload[1100], opts[2200];
	snprintf(upper, sizeof upper, "%s/upper", work);
	snprintf(wdir, sizeof wdir, "%s/work", work);
	snprintf(preload, sizeof preload, "%s/ld.so.preload", upper);
	if (strlen(work) > 1000)
		return errno = ENAMETOOLONG, fail(work);
	if ((mkdir(work, 0755) != 0 && errno != EEXIST) || (mkdir(upper, 0755) != 0 && errno != EEXIST) ||
	    (mkdir(wdir, 0755) != 0 && errno != EEXIST))
		return fail("mkdir");
	int fd = open(preload, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || dprintf(fd, "%s\n", lib) < 0 || close(fd) != 0)
		return fail(preload);
	if (unshare(CLONE_NEWNS) != 0)
		return fail("unshare(CLONE_NEWNS)");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		return fail("making / private");
	snprintf(opts, sizeof opts, "lowerdir=/etc,upperdir=%s,workdir=%s", upper, wdir);
	if (mount("overlay", "/etc", "overlay", 0, opts) != 0)
		return fail("overlay on /etc");
	if (mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0)
		return fail("tmpfs on /run");
	if (strcmp(qosd, "-") != 0 &&
	    (mkdir("/run/qosd", 0755) != 0 || mount(qosd, "/run/qosd", NULL, MS_BIND, NULL) != 0))
		return fail("binding /run/qosd");
	execvp(argv[4], argv + 4);
	return fail(argv[4]);
}
