/*
 * test_file.c -- opening the files kapd writes (core/kapd_file.c): a
 * regular file opens (created, appended, truncated only after the checks);
 * a symbolic link (to a file or dangling), a hard link, a FIFO and a
 * directory in its place are refused and left as they were; a directory
 * descriptor taken once keeps pointing at the original directory after
 * the directory is renamed and a symbolic link put in its place.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kapd.h"
#include "tap.h"
#include "tap_tmpdir.h"

static char dir[256];

static char *
at(const char *name)
{
    static char buf[4][PATH_MAX];
    static int  i;
    char       *p = buf[i++ % 4];

    snprintf(p, PATH_MAX, "%s/%s", dir, name);
    return p;
}

static void
put(const char *name, const char *text)
{
    FILE *f = fopen(at(name), "w");

    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

static char *
get(const char *name)
{
    static char buf[256];
    FILE       *f = fopen(at(name), "r");
    size_t      n = 0;

    buf[0] = '\0';
    if (f != NULL) {
        n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

static void
test_regular(void)
{
    struct stat st;
    int         fd;

    char *name = NULL;
    int   dfd;

    fd = kapd_file_open(at("none/new.log"), O_WRONLY | O_CREAT, 0640, NULL);
    ok(fd < 0 && errno == ENOENT && access(at("none"), F_OK) != 0,
       "kapd_file_open creates no directory");
    dfd = kapd_dir_open(at("sub/new.log"), &name, 1);
    fd = dfd < 0 ? -1 : kapd_file_openat(dfd, name, O_WRONLY | O_APPEND
                                         | O_CREAT, 0640, &st);
    ok(fd >= 0 && S_ISREG(st.st_mode) && st.st_size == 0,
       "a missing file and its directory are created (create = 1)");
    if (dfd >= 0)
        close(dfd);
    free(name);
    if (fd >= 0) {
        ok(write(fd, "one\n", 4) == 4, "written");
        ok((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, "close-on-exec");
        close(fd);
    }
    fd = kapd_file_open(at("sub/new.log"), O_WRONLY | O_APPEND | O_CREAT,
                        0640, &st);
    ok(fd >= 0 && st.st_size == 4, "an existing file opens with its size");
    if (fd >= 0)
        close(fd);
    fd = kapd_file_open(at("sub/new.log"), O_WRONLY | O_CREAT | O_TRUNC,
                        0640, &st);
    ok(fd >= 0 && st.st_size == 0, "O_TRUNC truncates a regular file");
    if (fd >= 0)
        close(fd);
}

static void
test_refused(void)
{
    int fd;

    put("target", "the user's own\n");
    ok(symlink(at("target"), at("link.log")) == 0, "symlink planted");
    errno = 0;
    fd = kapd_file_open(at("link.log"), O_WRONLY | O_APPEND | O_CREAT | O_TRUNC,
                        0640, NULL);
    ok(fd < 0 && errno == ELOOP, "a symbolic link is refused (%s)",
       kapd_file_strerror(errno));
    is_str(get("target"), "the user's own\n", "its target is unchanged");

    ok(symlink(at("nowhere"), at("dangling.log")) == 0, "dangling symlink");
    fd = kapd_file_open(at("dangling.log"), O_WRONLY | O_CREAT, 0640, NULL);
    ok(fd < 0 && errno == ELOOP && access(at("nowhere"), F_OK) != 0,
       "a dangling symbolic link is refused, nothing created at its target");

    ok(link(at("target"), at("hard.log")) == 0, "hard link planted");
    fd = kapd_file_open(at("hard.log"), O_WRONLY | O_CREAT | O_TRUNC, 0640,
                        NULL);
    ok(fd < 0 && errno == EMLINK, "a hard link is refused (%s)",
       kapd_file_strerror(errno));
    is_str(get("target"), "the user's own\n",
           "the linked file is not truncated");

    ok(mkfifo(at("fifo.log"), 0600) == 0, "FIFO planted");
    fd = kapd_file_open(at("fifo.log"), O_WRONLY | O_APPEND | O_CREAT, 0640,
                        NULL);
    ok(fd < 0 && errno == EINVAL, "a FIFO is refused at once (%s)",
       kapd_file_strerror(errno));

    ok(mkdir(at("dir.log"), 0700) == 0, "directory planted");
    fd = kapd_file_open(at("dir.log"), O_WRONLY | O_APPEND | O_CREAT, 0640,
                        NULL);
    ok(fd < 0 && errno == EISDIR, "a directory is refused (%s)",
       kapd_file_strerror(errno));
}

static void
test_dirfd(void)
{
    char *name = NULL;
    int   dfd, fd;

    ok(mkdir(at("logs"), 0700) == 0 && mkdir(at("home"), 0700) == 0,
       "directories");
    dfd = kapd_dir_open(at("logs/a.log"), &name, 0);
    ok(dfd >= 0 && name != NULL && strcmp(name, "a.log") == 0,
       "directory opened, name split off");
    /* the directory is renamed and a link to another put in its place */
    ok(rename(at("logs"), at("logs.moved")) == 0
       && symlink(at("home"), at("logs")) == 0, "directory swapped");
    fd = dfd >= 0 ? kapd_file_openat(dfd, name, O_WRONLY | O_CREAT, 0640,
                                     NULL) : -1;
    ok(fd >= 0, "opened relative to the descriptor");
    if (fd >= 0)
        close(fd);
    ok(access(at("logs.moved/a.log"), F_OK) == 0
       && access(at("home/a.log"), F_OK) != 0,
       "the file is in the original directory, not behind the new link");
    if (dfd >= 0)
        close(dfd);
    free(name);
    dfd = kapd_dir_open(at("logs/"), &name, 0);
    ok(dfd < 0 && errno == EISDIR && name == NULL,
       "a path ending in / names no file");
}

int
main(void)
{
    int rc;

    char tmpl[] = "/tmp/kapd-test-file-XXXXXX";

    if (mkdtemp(tmpl) == NULL) {
        printf("1..0 # SKIP mkdtemp: %s\n", strerror(errno));
        return 0;
    }
    snprintf(dir, sizeof(dir), "%s", tmpl);
    test_regular();
    test_refused();
    test_dirfd();
    rc = done_testing();
    tap_rmtree(dir);
    return rc;
}
