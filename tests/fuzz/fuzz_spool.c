/*
 * fuzz_spool - spool recovery on arbitrary segment bytes (a crash can leave
 * anything at the end of a segment, a disk can return anything). Invariant
 * besides memory safety: recovery never fails on bad content, and what it
 * returns is well formed.
 */
#include "scrubgate/common.h"
#include "scrubgate/spool.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[64];
    if (!dir[0]) {
        strcpy(dir, "/tmp/sg-fuzz-spool-XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    char *path = sg_xasprintf("%s/00000000000000000001.seg", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    struct sg_spool_recovered rec;
    if (sg_spool_recover(dir, &rec) != 0)
        abort();
    for (size_t i = 0; i < rec.n; i++)
        if (!rec.entries[i].site || !rec.entries[i].json ||
            strlen(rec.entries[i].json) > rec.entries[i].json_len)
            abort();
    sg_spool_recovered_free(&rec);
    unlink(path); /* recovery deletes it when nothing is pending; either way start clean */
    free(path);
    return 0;
}
