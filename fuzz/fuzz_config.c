/*
 * libFuzzer target: deployclaw.yaml text -> dc_config_parse.
 *
 * A parse must either succeed or fail with DC_ECONFIG and a position; either
 * way nothing may leak, and a successful config must dump without error.
 */
#include <stdint.h>
#include <stdlib.h>

#include <deployclaw/config.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dc_strbuf out = DC_STRBUF_INIT;
	dc_config *cfg = NULL;
	dc_error err = { 0 };
	int rc;

	rc = dc_config_parse(&cfg, "fuzz.yaml", (const char *)data, size, &err);
	if (rc == 0) {
		if (dc_config_dump(cfg, &out) != 0)
			abort();
	} else if (rc == DC_ECONFIG && size <= DC_CONFIG_MAX_BYTES && err.line <= 0) {
		/* every content error points somewhere */
		abort();
	}
	dc_strbuf_release(&out);
	dc_config_free(cfg);
	return 0;
}
