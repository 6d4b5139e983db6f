/* Fuzz target: a `shoal agent` request line (apps/shoal/fanout/agent_request.c):
 * whatever a front-end (or whoever feeds the agent) writes, parsing gives
 * a request whose every number is within its documented range and whose
 * hosts are all named, or a UserError text, never a crash, a leak or an
 * undefined conversion. */
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

/* Not assert(): the normal build has NDEBUG, and its replay must check too. */
#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c))                                                                                                      \
            abort();                                                                                                   \
    } while (0)

#include "../apps/shoal/fanout/agent_request.c"
#include "../apps/shoal/common/numarg.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    agent_request r;
    char err[2048];
    int rc = agent_request_parse((const char *)data, size, &r, err, sizeof(err));
    CHECK(memchr(err, 0, sizeof(err)));
    if (rc != 0) {
        CHECK(err[0]);
    } else if (r.kind == AGENT_LINE_EXEC || r.kind == AGENT_LINE_UPLOAD) {
        CHECK(r.timeout_ms >= 1 && r.timeout_ms <= AGENT_JSON_MAX_EXACT);
        CHECK(r.rate <= AGENT_JSON_MAX_EXACT && r.host_rate <= AGENT_JSON_MAX_EXACT);
        CHECK(r.out_cap <= AGENT_JSON_MAX_EXACT);
        CHECK(r.port <= 65535);
        CHECK(r.mode <= 07777);
        if (r.kind == AGENT_LINE_EXEC)
            CHECK(r.cmd && r.cmd[0]);
        else
            CHECK(r.source && r.source[0] && r.target && r.target[0]);
        json_t *hosts = agent_field(r.root, "Hosts");
        CHECK(r.n_hosts == (hosts ? json_array_size(hosts) : 0));
        for (size_t i = 0; i < r.n_hosts; i++) {
            CHECK(r.hosts[i].spec && r.hosts[i].spec[0]);
            CHECK(r.hosts[i].host && r.hosts[i].host[0]);
            CHECK(r.hosts[i].port <= 65535);
        }
    }
    agent_request_free(&r);
    return 0;
}
