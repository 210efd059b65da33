/* The I/O thread never waits for a script's thread. A sender keeps four
 * 8 MiB messages in flight on one socket (each one holds the socket's wire
 * while it is framed and masked, for milliseconds), a reader takes the
 * echoes, and a sampler reads the I/O thread's kernel wait channel
 * (/proc/self/task/TID/wchan) thousands of times meanwhile. Waiting on a
 * lock shows as a futex wait; the I/O thread may only ever wait in epoll.
 * Run inside testpeer/serve.py. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <luanet.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "peer.h"

enum { MESSAGES = 60, IN_FLIGHT = 4, SIZE = 8 << 20 };

static luanet_ws *ws;
static sem_t slots;
static volatile int done;
static int sent, echoed, wrong;

static void *sender(void *arg) {
    (void)arg;
    char *buf = malloc(SIZE);
    memset(buf, 'x', SIZE);
    for (int i = 0; i < MESSAGES; i++) {
        sem_wait(&slots);
        if (luanet_ws_send_text(ws, buf, SIZE) == LUANET_OK) sent++;
    }
    free(buf);
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    while (echoed < MESSAGES) {
        luanet_message *m = NULL;
        luanet_result r = luanet_ws_recv(ws, 10000, &m);
        if (r != LUANET_OK) break;
        size_t len = 0;
        luanet_message_data(m, &len);
        if (len != SIZE) wrong++;
        luanet_message_free(m);
        echoed++;
        sem_post(&slots);
    }
    done = 1;
    return NULL;
}

/* The task id of the thread named `name`, or 0. */
static long thread_named(const char *name) {
    DIR *dir = opendir("/proc/self/task");
    struct dirent *entry;
    long found = 0;
    while (dir && !found && (entry = readdir(dir))) {
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", entry->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(comm, sizeof comm, f) && strncmp(comm, name, strlen(name)) == 0) found = atol(entry->d_name);
        fclose(f);
    }
    if (dir) closedir(dir);
    return found;
}

int main(void) {
    /* 32 MiB in flight: past the default 16 MiB send bound. */
    luanet_ws_options *options = NULL;
    CHECK(luanet_ws_options_new(&options) == LUANET_OK &&
              luanet_ws_options_set_limit(options, LUANET_WS_MAX_SEND_BUFFER_BYTES, 64 << 20) == LUANET_OK,
          "options");
    CHECK(luanet_ws_connect_with(url("LUANET_WS", "/echo"), options, &ws, NULL) == LUANET_OK, "connect");
    luanet_ws_options_free(options);
    if (!ws) return finish();
    /* The thread names itself once it runs. */
    long io = 0;
    struct timespec tick = {0, 10000000};
    for (int i = 0; i < 100 && !io; i++) {
        io = thread_named("luanet-io");
        if (!io) nanosleep(&tick, NULL);
    }
    CHECK(io > 0, "the I/O thread is there");
    char wchan_path[100];
    snprintf(wchan_path, sizeof wchan_path, "/proc/self/task/%ld/wchan", io);

    sem_init(&slots, 0, IN_FLIGHT);
    pthread_t send_thread, read_thread;
    pthread_create(&send_thread, NULL, sender, NULL);
    pthread_create(&read_thread, NULL, reader, NULL);
    long samples = 0, futex = 0;
    char last_futex[64] = "";
    struct timespec pause = {0, 200000};
    while (!done) {
        FILE *f = fopen(wchan_path, "r");
        char wchan[64] = "";
        if (f) {
            if (fgets(wchan, sizeof wchan, f)) {
                samples++;
                if (strncmp(wchan, "futex", 5) == 0) {
                    futex++;
                    snprintf(last_futex, sizeof last_futex, "%s", wchan);
                }
            }
            fclose(f);
        }
        nanosleep(&pause, NULL);
    }
    pthread_join(send_thread, NULL);
    pthread_join(read_thread, NULL);
    printf("# %ld samples of the I/O thread, %ld in a futex wait %s\n", samples, futex, last_futex);
    CHECK(sent == MESSAGES && echoed == MESSAGES && wrong == 0, "every 8 MiB message came back whole");
    CHECK(samples >= 100, "the I/O thread was sampled");
    /* A lock the I/O thread takes briefly (a socket's inbox) may be caught
     * contended once in a while; waiting on a wire shows in every cycle. */
    CHECK(futex * 100 <= samples, "the I/O thread waited on a lock in at most 1% of the samples");
    luanet_ws_close(ws, 1000);
    luanet_ws_free(ws);
    sem_destroy(&slots);
    return finish();
}
