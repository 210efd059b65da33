/* luanet's general request from C: a PATCH with two headers, the response's
 * headers, final URL, version and timings, and a failure's kind.
 * Usage: request URL (without arguments it uses $LUANET_HTTP/inspect from
 * testpeer/serve.py). */
#include <luanet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what) {
    fprintf(stderr, "%s: %s (%s, kind %s)\n", what, luanet_last_error(), luanet_result_name(LUANET_ERR_NETWORK),
            luanet_error_kind_name(luanet_last_error_kind()));
    return 1;
}

int main(int argc, char **argv) {
    char url[512];
    const char *base = getenv("LUANET_HTTP");
    snprintf(url, sizeof url, "%s", argc > 1 ? argv[1] : "");
    if (argc < 2) snprintf(url, sizeof url, "%s/inspect", base ? base : "http://127.0.0.1:8080");

    luanet_request *req = NULL;
    if (luanet_request_new(url, &req) != LUANET_OK) return fail("luanet_request_new");
    luanet_request_set_method(req, "PATCH");
    luanet_request_add_header(req, "Authorization", "Bearer example-token");
    luanet_request_add_header(req, "Content-Type", "application/json");
    luanet_request_set_body(req, (const uint8_t *)"{\"n\":1}", 7);
    luanet_request_set_timeout_ms(req, 5000);

    luanet_response *res = NULL;
    if (luanet_request_perform(req, &res) != LUANET_OK) {
        luanet_request_free(req);
        return fail("luanet_request_perform");
    }
    printf("%u from %s over HTTP/%s after %u redirects\n", luanet_response_status(res), luanet_response_url(res),
           luanet_response_http_version(res), luanet_response_redirects(res));
    for (size_t i = 0; i < luanet_response_header_count(res); i++) {
        const char *name, *value;
        luanet_response_header_at(res, i, &name, &value, NULL);
        printf("  %s: %s\n", name, value);
    }
    const char *type = luanet_response_header(res, "Content-Type", NULL);
    printf("content type: %s\n", type ? type : "(none)");
    luanet_timings t;
    luanet_response_timings(res, &t);
    printf("timings (ms): dns %.2f, connect %.2f, tls %.2f, first byte %.2f, total %.2f\n", t.dns_ms, t.connect_ms,
           t.tls_ms, t.first_byte_ms, t.total_ms);
    size_t len;
    const uint8_t *body = luanet_response_body(res, &len);
    printf("%.*s", (int)len, (const char *)body);
    luanet_response_free(res);
    luanet_request_free(req);

    /* A failure names its kind: here a port where nothing listens. */
    const char *closed = getenv("LUANET_CLOSED_PORT");
    snprintf(url, sizeof url, "http://127.0.0.1:%s/", closed ? closed : "9");
    if (luanet_request_new(url, &req) == LUANET_OK) {
        if (luanet_request_perform(req, &res) == LUANET_OK) {
            luanet_response_free(res);
        } else {
            printf("expected failure: %s (kind %s)\n", luanet_last_error(),
                   luanet_error_kind_name(luanet_last_error_kind()));
        }
        luanet_request_free(req);
    }
    return 0;
}
