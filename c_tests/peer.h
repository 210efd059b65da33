/* What the C tests share about the local test peer (testpeer/serve.py):
 * url("LUANET_HTTP", "/echo") is that server's address plus a path, in a
 * static buffer valid until the next call. */
#ifndef LUANET_PEER_H
#define LUANET_PEER_H

#include <stdio.h>
#include <stdlib.h>

static char url_buf[512];

static const char *url(const char *base_env, const char *path) {
    const char *base = getenv(base_env);
    snprintf(url_buf, sizeof url_buf, "%s%s", base ? base : "", path);
    return url_buf;
}

#endif
