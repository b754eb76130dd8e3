/*
 * dest.c - the destination registry: type name -> vtable.
 */
#include "scrubgate/common.h"
#include "scrubgate/dest.h"

#include <string.h>

static const struct sg_dest_ops *const registry[] = {&sg_dest_tiktok};

const struct sg_dest_ops *sg_dest_ops_find(const char *type)
{
    for (size_t i = 0; i < SG_ARRAY_SIZE(registry); i++)
        if (strcmp(registry[i]->type, type) == 0)
            return registry[i];
    return NULL;
}
