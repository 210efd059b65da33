/* The general request of the C API (luanet_request_*, the response's
 * headers, URL, version and timings, error kinds) against the local
 * servers, run inside testpeer/serve.py. Also built with AddressSanitizer
 * and UndefinedBehaviorSanitizer. */
#define _POSIX_C_SOURCE 200809L
#include <luanet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "peer.h"

static int error_is(const char *expected) { return strcmp(luanet_last_error(), expected) == 0; }

static const char *env(const char *name) {
    const char *value = getenv(name);
    return value ? value : "";
}

/* A new request for url(base, path); NULL (and a failed check) if refused. */
static luanet_request *new_request(const char *base, const char *path) {
    luanet_request *req = NULL;
    CHECK(luanet_request_new(url(base, path), &req) == LUANET_OK, "luanet_request_new");
    return req;
}

/* The body as a NUL-terminated copy in a static buffer. */
static const char *body_text(const luanet_response *r) {
    static char text[4096];
    size_t len = 0;
    const uint8_t *body = luanet_response_body(r, &len);
    if (len >= sizeof text) len = sizeof text - 1;
    memcpy(text, body, len);
    text[len] = 0;
    return text;
}

static void test_bad_arguments(void) {
    luanet_request *req = (luanet_request *)1;
    CHECK(luanet_request_new("ftp://h/", &req) == LUANET_ERR_ARGUMENT, "an ftp URL is an argument error");
    CHECK(error_is("unsupported URL scheme 'ftp' (expected http or https)"), "its message");
    CHECK(req == (luanet_request *)1, "out-parameter untouched on failure");
    CHECK(luanet_last_error_kind() == LUANET_ERROR_NONE, "an argument error has no request kind");
    CHECK(luanet_request_new(NULL, &req) == LUANET_ERR_ARGUMENT && error_is("url is NULL"), "NULL url");

    req = new_request("LUANET_HTTP", "/");
    CHECK(luanet_request_set_method(req, "GET /") == LUANET_ERR_ARGUMENT &&
              error_is("method 'GET /' is not an HTTP token"),
          "a method that is not a token");
    CHECK(luanet_request_add_header(req, "Bad Name", "x") == LUANET_ERR_ARGUMENT &&
              error_is("header name 'Bad Name' is not an HTTP token"),
          "a header name that is not a token");
    CHECK(luanet_request_add_header(req, "A", "x\r\nB: y") == LUANET_ERR_ARGUMENT &&
              error_is("the value of header 'A' contains a CR"),
          "a header value with CR LF");
    CHECK(luanet_request_add_header(req, "A", NULL) == LUANET_ERR_ARGUMENT, "a NULL header value");
    CHECK(luanet_request_set_http_version(req, "3") == LUANET_ERR_ARGUMENT &&
              error_is("'3' is not \"1.1\" or \"2\""),
          "an unknown HTTP version");
    CHECK(luanet_request_set_proxy(req, "ftp://p/") == LUANET_ERR_ARGUMENT, "an ftp proxy");
    CHECK(luanet_request_set_ca_file(req, "") == LUANET_ERR_ARGUMENT && error_is("path is empty"), "an empty path");
    CHECK(luanet_request_set_body(req, NULL, 3) == LUANET_ERR_ARGUMENT, "a NULL body of 3 bytes");
    CHECK(luanet_request_set_method(NULL, "GET") == LUANET_ERR_ARGUMENT && error_is("request is NULL"),
          "a NULL request");
    luanet_response *r = NULL;
    CHECK(luanet_request_perform(NULL, &r) == LUANET_ERR_ARGUMENT, "perform a NULL request");
    CHECK(luanet_request_perform(req, NULL) == LUANET_ERR_ARGUMENT, "perform into NULL");
    luanet_request_free(req);
    luanet_request_free(NULL);
}

static void test_method_headers_body(void) {
    luanet_request *req = new_request("LUANET_HTTP", "/headers");
    CHECK(luanet_request_set_method(req, "PATCH") == LUANET_OK, "set_method");
    CHECK(luanet_request_add_header(req, "X-Rep", "1") == LUANET_OK, "add_header");
    CHECK(luanet_request_add_header(req, "X-Rep", "2") == LUANET_OK, "add_header again");
    CHECK(luanet_request_add_header(req, "Authorization", "Bearer x") == LUANET_OK, "add_header Authorization");
    CHECK(luanet_request_set_body(req, (const uint8_t *)"abc", 3) == LUANET_OK, "set_body");
    CHECK(luanet_request_set_timeout_ms(req, 5000) == LUANET_OK, "set_timeout_ms");
    CHECK(luanet_request_set_connect_timeout_ms(req, 2000) == LUANET_OK, "set_connect_timeout_ms");
    luanet_response *r = NULL;
    CHECK(luanet_request_perform(req, &r) == LUANET_OK, "PATCH /headers");
    const char *text = body_text(r);
    CHECK(strstr(text, "\nx-rep: 1\nx-rep: 2\nauthorization: Bearer x\ncontent-length: 3\n") != NULL,
          "the server saw the headers in order, repeats included");
    CHECK(strstr(text, "content-type") == NULL, "no Content-Type added");
    luanet_response_free(r);

    CHECK(luanet_request_set_method(req, "HEAD") == LUANET_OK, "set_method HEAD");
    CHECK(luanet_request_perform(req, &r) == LUANET_OK, "HEAD (the same request performed again)");
    size_t len = 99;
    luanet_response_body(r, &len);
    CHECK(luanet_response_status(r) == 200 && len == 0, "HEAD: 200, no body");
    luanet_response_free(r);
    luanet_request_free(req);
}

static void test_response_headers(void) {
    luanet_request *req = new_request("LUANET_HTTPS", "/cookies");
    luanet_response *r = NULL;
    CHECK(luanet_request_perform(req, &r) == LUANET_OK, "GET /cookies over HTTPS");
    size_t len = 0;
    const char *cookies = luanet_response_header(r, "Set-Cookie", &len);
    CHECK(cookies && strcmp(cookies, "a=1; Path=/, b=2") == 0 && len == 16, "joined Set-Cookie, any case");
    CHECK(luanet_response_header(r, "x-missing", &len) == NULL, "a missing header is NULL");
    size_t count = luanet_response_header_count(r);
    CHECK(count >= 6, "header_count");
    const char *name = NULL, *value = NULL;
    size_t value_len = 0;
    CHECK(luanet_response_header_at(r, 0, &name, &value, &value_len) == LUANET_OK, "header_at 0");
    CHECK(strcmp(name, "set-cookie") == 0 && strcmp(value, "a=1; Path=/") == 0 && value_len == 11, "line 0");
    CHECK(luanet_response_header_at(r, 1, &name, &value, NULL) == LUANET_OK && strcmp(value, "b=2") == 0,
          "line 1: the second Set-Cookie on its own");
    CHECK(luanet_response_header_at(r, count, &name, &value, NULL) == LUANET_ERR_ARGUMENT, "past the last line");
    CHECK(strcmp(luanet_response_http_version(r), "2") == 0, "HTTP/2 over TLS");
    CHECK(strcmp(luanet_response_url(r), url("LUANET_HTTPS", "/cookies")) == 0, "the URL");
    luanet_timings t;
    CHECK(luanet_response_timings(r, &t) == LUANET_OK, "timings");
    CHECK(t.dns_ms <= t.connect_ms && t.connect_ms <= t.tls_ms && t.tls_ms <= t.first_byte_ms &&
              t.first_byte_ms <= t.total_ms && t.total_ms > 0,
          "timings in order");
    luanet_response_free(r);
    luanet_request_free(req);

    CHECK(luanet_http_get(url("LUANET_HTTP", "/"), 5000, &r) == LUANET_OK, "a contract GET");
    CHECK(luanet_response_header_count(r) == 0 && luanet_response_url(r) == NULL &&
              luanet_response_http_version(r) == NULL && luanet_response_timings(r, &t) == LUANET_ERR_ARGUMENT,
          "a contract response has no headers, URL, version or timings");
    luanet_response_free(r);
    CHECK(luanet_response_header(NULL, "a", NULL) == NULL && luanet_response_header_count(NULL) == 0 &&
              luanet_response_redirects(NULL) == 0 && luanet_response_url(NULL) == NULL,
          "getters accept NULL");
}

static void test_redirects(void) {
    luanet_request *req = new_request("LUANET_HTTP", "/redirect/3");
    luanet_response *r = NULL;
    CHECK(luanet_request_perform(req, &r) == LUANET_OK, "a chain of 3");
    CHECK(luanet_response_redirects(r) == 3 && strcmp(luanet_response_url(r), url("LUANET_HTTP", "/redirect/0")) == 0,
          "3 redirects to /redirect/0");
    luanet_response_free(r);
    CHECK(luanet_request_set_redirects(req, true, 2) == LUANET_OK, "set_redirects 2");
    CHECK(luanet_request_perform(req, &r) == LUANET_ERR_NETWORK, "a chain longer than 2");
    CHECK(luanet_last_error_kind() == LUANET_ERROR_REDIRECT && error_is("too many redirects (more than 2)"),
          "kind redirect");
    CHECK(strcmp(luanet_error_kind_name(luanet_last_error_kind()), "redirect") == 0, "its name");
    CHECK(luanet_request_set_redirects(req, false, 10) == LUANET_OK, "set_redirects off");
    CHECK(luanet_request_perform(req, &r) == LUANET_OK && luanet_response_status(r) == 302, "the 302 itself");
    CHECK(strcmp(luanet_response_header(r, "location", NULL), "/redirect/2") == 0, "its Location");
    luanet_response_free(r);
    luanet_request_free(req);
}

static void test_tls_options(void) {
    luanet_request *req = new_request("LUANET_HTTPS_WRONG_CA", "/");
    luanet_response *r = NULL;
    CHECK(luanet_request_perform(req, &r) == LUANET_ERR_NETWORK && luanet_last_error_kind() == LUANET_ERROR_TLS,
          "an unknown CA fails with kind tls");
    CHECK(luanet_request_set_ca_file(req, env("LUANET_OTHER_CA_FILE")) == LUANET_OK, "set_ca_file");
    CHECK(luanet_request_perform(req, &r) == LUANET_OK && luanet_response_status(r) == 200, "trusted by ca_file");
    luanet_response_free(r);
    luanet_request_free(req);

    req = new_request("LUANET_HTTPS_WRONG_HOST", "/");
    CHECK(luanet_request_set_verify(req, false) == LUANET_OK, "set_verify false");
    CHECK(luanet_request_perform(req, &r) == LUANET_OK && luanet_response_status(r) == 200, "no host check");
    luanet_response_free(r);
    luanet_request_free(req);

    req = new_request("LUANET_HTTPS_CLIENT_AUTH", "/");
    CHECK(luanet_request_perform(req, &r) == LUANET_ERR_NETWORK && luanet_last_error_kind() == LUANET_ERROR_TLS,
          "no client certificate: kind tls");
    CHECK(luanet_request_set_client_cert(req, env("LUANET_CLIENT_CERT"), env("LUANET_CLIENT_KEY")) == LUANET_OK,
          "set_client_cert");
    CHECK(luanet_request_perform(req, &r) == LUANET_OK && luanet_response_status(r) == 200, "mutual TLS");
    luanet_response_free(r);
    luanet_request_free(req);
}

static void test_proxy_limits_output(void) {
    luanet_request *req = new_request("LUANET_HTTP", "/inspect");
    luanet_response *r = NULL;
    CHECK(luanet_request_set_proxy(req, env("LUANET_PROXY")) == LUANET_OK, "set_proxy");
    CHECK(luanet_request_perform(req, &r) == LUANET_OK, "through the proxy");
    CHECK(strstr(body_text(r), "via=1.1 luanet-test-proxy") != NULL, "the proxy's Via");
    luanet_response_free(r);
    CHECK(luanet_request_set_proxy(req, "") == LUANET_OK, "set_proxy \"\" (none)");
    CHECK(luanet_request_perform(req, &r) == LUANET_OK && strstr(body_text(r), "via=\n") != NULL, "direct");
    luanet_response_free(r);
    luanet_request_free(req);

    req = new_request("LUANET_HTTP", "/bytes/1000");
    CHECK(luanet_request_set_max_body_bytes(req, 999) == LUANET_OK, "set_max_body_bytes");
    CHECK(luanet_request_perform(req, &r) == LUANET_ERR_NETWORK && luanet_last_error_kind() == LUANET_ERROR_TOO_LARGE &&
              error_is("response body larger than 999 bytes"),
          "too large");
    CHECK(luanet_request_set_max_body_bytes(req, 1000) == LUANET_OK, "set_max_body_bytes 1000");
    char path[64];
    snprintf(path, sizeof path, "/tmp/luanet-request-%ld", (long)getpid());
    CHECK(luanet_request_set_output(req, path) == LUANET_OK, "set_output");
    CHECK(luanet_request_perform(req, &r) == LUANET_OK, "to a file");
    size_t len = 99;
    luanet_response_body(r, &len);
    CHECK(len == 0, "no body in memory");
    luanet_response_free(r);
    FILE *f = fopen(path, "rb");
    int exact = f != NULL;
    for (int i = 0; exact && i < 1000; i++) exact = fgetc(f) == i % 256;
    CHECK(exact && fgetc(f) == EOF, "the file holds the 1000 bytes");
    if (f) fclose(f);
    remove(path);
    CHECK(luanet_request_set_output(req, NULL) == LUANET_OK, "set_output NULL (memory again)");
    CHECK(luanet_request_set_http_version(req, "1.1") == LUANET_OK, "set_http_version");
    CHECK(luanet_request_perform(req, &r) == LUANET_OK && strcmp(luanet_response_http_version(r), "1.1") == 0,
          "in memory over 1.1");
    luanet_response_body(r, &len);
    CHECK(len == 1000, "the body in memory");
    luanet_response_free(r);
    luanet_request_free(req);

    char closed[64];
    snprintf(closed, sizeof closed, "http://127.0.0.1:%s/", env("LUANET_CLOSED_PORT"));
    CHECK(luanet_request_new(closed, &req) == LUANET_OK, "request to a closed port");
    CHECK(luanet_request_perform(req, &r) == LUANET_ERR_NETWORK && luanet_last_error_kind() == LUANET_ERROR_CONNECT,
          "kind connect");
    CHECK(strcmp(luanet_error_kind_name(LUANET_ERROR_CONNECT), "connect") == 0 &&
              strcmp(luanet_error_kind_name(LUANET_ERROR_TOO_LARGE), "too_large") == 0 &&
              strcmp(luanet_error_kind_name(LUANET_ERROR_NONE), "none") == 0,
          "kind names");
    luanet_request_free(req);
}

int main(void) {
    test_bad_arguments();
    test_method_headers_body();
    test_response_headers();
    test_redirects();
    test_tls_options();
    test_proxy_limits_output();
    return finish();
}
