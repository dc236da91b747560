/*
 * Rendering lint findings: human (compiler style), JSON, SARIF 2.1.0 and
 * GitHub workflow annotations. Pure text building; the caller prints.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include <deployclaw/analysis.h>

#include "lint_internal.h"
#include "util/pool.h"
#include "util/util.h"

int dc_lint_format_parse(const char *s, dc_lint_format *out)
{
	static const char *const names[] = { "human", "json", "sarif", "github" };
	int i;

	for (i = 0; s && i < 4; i++)
		if (strcasecmp(s, names[i]) == 0) {
			*out = (dc_lint_format)i;
			return 0;
		}
	return DC_EINVAL;
}

static const char *sev_color(dc_severity s)
{
	return s == DC_SEV_ERROR ? "\033[1;31m" : s == DC_SEV_WARNING ? "\033[1;33m" : "\033[1;36m";
}

/* Display width of the first `col - 1` characters, tabs kept as tabs. */
static void caret_line(dc_strbuf *out, const char *src, int col)
{
	int c = 1;
	const unsigned char *p = (const unsigned char *)src;

	for (; *p && c < col; p++) {
		if ((*p & 0xC0) == 0x80)
			continue;
		dc_strbuf_addch(out, *p == '\t' ? '\t' : ' ');
		c++;
	}
	dc_strbuf_addch(out, '^');
}

static void render_human(const dc_finding_list *l, bool color, dc_strbuf *out)
{
	size_t i, ne = 0, nw = 0, ni = 0;
	const char *bold = color ? "\033[1m" : "", *reset = color ? "\033[0m" : "";
	const char *blue = color ? "\033[1;34m" : "";

	for (i = 0; i < l->len; i++) {
		const dc_finding *f = &l->items[i];
		const char *sc = color ? sev_color(f->severity) : "";

		if (f->severity == DC_SEV_ERROR)
			ne++;
		else if (f->severity == DC_SEV_WARNING)
			nw++;
		else
			ni++;
		dc_strbuf_addf(out, "%s%s:%d:%d:%s %s%s%s [%s %s]: %s\n", bold,
		               f->file ? f->file : "<sql>", f->line, f->col, reset, sc,
		               dc_severity_name(f->severity), reset, f->rule->id, f->rule->name,
		               f->message ? f->message : "");
		if (f->source) {
			dc_strbuf_addf(out, "%s %5d |%s %s\n", blue, f->line, reset, f->source);
			dc_strbuf_addf(out, "%s       |%s ", blue, reset);
			dc_strbuf_adds(out, sc);
			caret_line(out, f->source, f->col);
			dc_strbuf_addf(out, "%s\n", reset);
		}
		dc_strbuf_addf(out, "  %swhy:%s %s\n", bold, reset, f->rule->why);
		dc_strbuf_addf(out, "  %shelp:%s %s\n", bold, reset, f->rule->help);
		if (f->suggestion) {
			const char *s = f->suggestion, *nl;

			dc_strbuf_addf(out, "  %ssuggested:%s\n", bold, reset);
			while (*s) {
				nl = strchr(s, '\n');
				dc_strbuf_adds(out, "    ");
				dc_strbuf_add(out, s, nl ? (size_t)(nl - s) : strlen(s));
				dc_strbuf_addch(out, '\n');
				if (!nl)
					break;
				s = nl + 1;
			}
		}
		dc_strbuf_addch(out, '\n');
	}
	dc_strbuf_addf(out, "%zu error%s, %zu warning%s, %zu note%s\n", ne, ne == 1 ? "" : "s", nw,
	               nw == 1 ? "" : "s", ni, ni == 1 ? "" : "s");
}

/* The rule's texts, one shared json_t per rule and field (referenced, not copied, per finding). */
typedef struct rule_json {
	json_t *id, *name, *why, *help;
} rule_json;

static json_t *finding_json(const dc_finding *f, rule_json *rj)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (!rj->id) {
		rj->id = json_string(f->rule->id);
		rj->name = json_string(f->rule->name);
		rj->why = json_string(f->rule->why);
		rj->help = json_string(f->rule->help);
	}
	json_object_set_new(o, "file", f->file ? json_string(f->file) : json_null());
	json_object_set_new(o, "line", json_integer(f->line));
	json_object_set_new(o, "column", json_integer(f->col));
	json_object_set(o, "rule", rj->id);
	json_object_set(o, "name", rj->name);
	json_object_set_new(o, "severity", json_string(dc_severity_name(f->severity)));
	json_object_set_new(o, "message", json_string(f->message ? f->message : ""));
	json_object_set(o, "why", rj->why);
	json_object_set(o, "help", rj->help);
	json_object_set_new(o, "suggestion",
	                    f->suggestion ? json_string(f->suggestion) : json_null());
	return o;
}

static int dump_piece(const char *buf, size_t len, void *data)
{
	return dc_strbuf_add(data, buf, len) == 0 ? 0 : -1;
}

/* Streams the document into `out`: no intermediate copy of a large output. */
static int dump(json_t *root, dc_strbuf *out)
{
	int rc;

	if (!root)
		return DC_ENOMEM;
	rc = json_dump_callback(root, dump_piece, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (rc != 0)
		return DC_ENOMEM;
	dc_strbuf_addch(out, '\n');
	return dc_strbuf_error(out);
}

/*
 * --format json: {"findings": [...], "summary": {...}} as jansson prints it
 * with JSON_INDENT(2). Each finding is built, dumped and freed on its own --
 * a large list never exists as one tree -- and slices of the list are
 * rendered on several threads, then joined in order. A finding dumped alone
 * sits at depth 0; inside the document it sits at depth 2, so every line
 * after its first gets four more spaces (a dumped JSON string never holds a
 * raw newline, so this only touches indentation).
 */
typedef struct json_slice {
	const dc_finding_list *l;
	size_t from, to;
	dc_strbuf out;
	int rc;
} json_slice;

static int dump_indented(json_t *v, const char *indent, dc_strbuf *out)
{
	dc_strbuf tmp = DC_STRBUF_INIT;
	const char *p, *nl;
	int rc;

	if (!v)
		return DC_ENOMEM;
	rc = json_dump_callback(v, dump_piece, &tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(v);
	if (rc != 0 || dc_strbuf_error(&tmp)) {
		dc_strbuf_release(&tmp);
		return DC_ENOMEM;
	}
	for (p = tmp.buf; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		dc_strbuf_add(out, p, (size_t)(nl - p) + 1);
		dc_strbuf_adds(out, indent);
	}
	dc_strbuf_adds(out, p);
	dc_strbuf_release(&tmp);
	return dc_strbuf_error(out);
}

static void json_slice_run(size_t slice, void *arg)
{
	json_slice *sl = &((json_slice *)arg)[slice];
	const dc_lint_rule *rules;
	rule_json *rj;
	size_t i, nrules;

	rules = dc_lint_rules(&nrules);
	if (!(rj = calloc(nrules + 1, sizeof(*rj)))) {
		sl->rc = DC_ENOMEM;
		return;
	}
	for (i = sl->from; i < sl->to && !sl->rc; i++) {
		const dc_finding *f = &sl->l->items[i];
		size_t r = (size_t)(f->rule - rules);

		if (i > 0)
			dc_strbuf_adds(&sl->out, ",\n    ");
		rule_json own = { NULL, NULL, NULL, NULL }; /* a rule not in the table */

		sl->rc = dump_indented(finding_json(f, r < nrules ? &rj[r] : &own), "    ",
		                       &sl->out);
		json_decref(own.id);
		json_decref(own.name);
		json_decref(own.why);
		json_decref(own.help);
	}
	for (i = 0; i <= nrules; i++) {
		json_decref(rj[i].id);
		json_decref(rj[i].name);
		json_decref(rj[i].why);
		json_decref(rj[i].help);
	}
	free(rj);
}

#define JSON_SLICE_MIN 2000 /* findings per thread worth starting one for */

static int render_json(const dc_finding_list *l, dc_strbuf *out)
{
	json_slice sl[8];
	unsigned cpus = dc_pool_cpus();
	size_t n = cpus > 8 ? 8 : cpus, i;
	int rc = 0;

	if (n > l->len / JSON_SLICE_MIN)
		n = l->len / JSON_SLICE_MIN ? l->len / JSON_SLICE_MIN : 1;
	for (i = 0; i < n; i++) {
		sl[i].l = l;
		sl[i].from = l->len * i / n;
		sl[i].to = l->len * (i + 1) / n;
		sl[i].rc = 0;
		dc_strbuf_init(&sl[i].out, 0);
	}
	/* Never fails: threads that cannot be had make the run narrower. */
	(void)dc_pool_run(n, (unsigned)n, 0, json_slice_run, sl);
	dc_strbuf_adds(out, l->len ? "{\n  \"findings\": [\n    " : "{\n  \"findings\": []");
	for (i = 0; i < n; i++) {
		if (sl[i].rc || dc_strbuf_error(&sl[i].out))
			rc = DC_ENOMEM;
		dc_strbuf_add(out, sl[i].out.buf, sl[i].out.len);
		dc_strbuf_release(&sl[i].out);
	}
	if (rc)
		return rc;
	dc_strbuf_adds(out, l->len ? "\n  ],\n  \"summary\": " : ",\n  \"summary\": ");
	rc = dump_indented(
	        json_pack("{s:I, s:I, s:I}", "errors",
	                  (json_int_t)dc_finding_list_count(l, DC_SEV_ERROR), "warnings",
	                  (json_int_t)(dc_finding_list_count(l, DC_SEV_WARNING) -
	                               dc_finding_list_count(l, DC_SEV_ERROR)),
	                  "infos", (json_int_t)(l->len - dc_finding_list_count(l, DC_SEV_WARNING))),
	        "  ", out);
	dc_strbuf_adds(out, "\n}\n");
	return rc ? rc : dc_strbuf_error(out);
}

static const char *sarif_level(dc_severity s)
{
	return s == DC_SEV_ERROR ? "error" : s == DC_SEV_WARNING ? "warning" : "note";
}

static int render_sarif(const dc_finding_list *l, dc_strbuf *out)
{
	const dc_lint_rule *rules;
	json_t *rules_arr = json_array(), *results = json_array(), *root;
	size_t i, n;

	rules = dc_lint_rules(&n);
	for (i = 0; i < n; i++)
		json_array_append_new(
		        rules_arr,
		        json_pack("{s:s, s:s, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}", "id",
		                  rules[i].id, "name", rules[i].name, "shortDescription", "text",
		                  rules[i].summary, "fullDescription", "text", rules[i].why, "help",
		                  "text", rules[i].help, "defaultConfiguration", "level",
		                  sarif_level(rules[i].severity == DC_SEV_OFF
		                                      ? DC_SEV_INFO
		                                      : rules[i].severity)));
	for (i = 0; i < l->len; i++) {
		const dc_finding *f = &l->items[i];
		json_t *r = json_pack(
		        "{s:s, s:I, s:s, s:{s:s}, s:[{s:{s:{s:s}, s:{s:i, s:i}}}]}", "ruleId",
		        f->rule->id, "ruleIndex", (json_int_t)(f->rule - rules), "level",
		        sarif_level(f->severity), "message", "text", f->message ? f->message : "",
		        "locations", "physicalLocation", "artifactLocation", "uri",
		        f->file ? f->file : "sql", "region", "startLine", f->line < 1 ? 1 : f->line,
		        "startColumn", f->col < 1 ? 1 : f->col);

		if (r && f->suggestion)
			json_object_set_new(r, "properties",
			                    json_pack("{s:s}", "suggestion", f->suggestion));
		json_array_append_new(results, r);
	}
	root = json_pack("{s:s, s:s, s:[{s:{s:{s:s, s:s, s:s, s:o}}, s:o}]}", "$schema",
	                 "https://json.schemastore.org/sarif-2.1.0.json", "version", "2.1.0",
	                 "runs", "tool", "driver", "name", "deployclaw", "version", DC_VERSION,
	                 "informationUri", "https://github.com/deployclaw/deployclaw", "rules",
	                 rules_arr, "results", results);
	return dump(root, out);
}

/* GitHub's workflow-command escaping: %, CR, LF in data; also : and , in properties. */
static void gh_escape(dc_strbuf *out, const char *s, bool property)
{
	for (; s && *s; s++) {
		if (*s == '%')
			dc_strbuf_adds(out, "%25");
		else if (*s == '\r')
			dc_strbuf_adds(out, "%0D");
		else if (*s == '\n')
			dc_strbuf_adds(out, "%0A");
		else if (property && *s == ':')
			dc_strbuf_adds(out, "%3A");
		else if (property && *s == ',')
			dc_strbuf_adds(out, "%2C");
		else
			dc_strbuf_addch(out, *s);
	}
}

static void render_github(const dc_finding_list *l, dc_strbuf *out)
{
	size_t i;

	for (i = 0; i < l->len; i++) {
		const dc_finding *f = &l->items[i];

		dc_strbuf_addf(out, "::%s file=",
		               f->severity == DC_SEV_ERROR     ? "error"
		               : f->severity == DC_SEV_WARNING ? "warning"
		                                               : "notice");
		gh_escape(out, f->file ? f->file : "sql", true);
		dc_strbuf_addf(out, ",line=%d,col=%d,title=", f->line, f->col);
		gh_escape(out, f->rule->id, true);
		dc_strbuf_addch(out, ' ');
		gh_escape(out, f->rule->name, true);
		dc_strbuf_adds(out, "::");
		gh_escape(out, f->message, false);
		dc_strbuf_adds(out, " (");
		gh_escape(out, f->rule->help, false);
		dc_strbuf_adds(out, ")\n");
	}
}

int dc_lint_render(const dc_finding_list *l, dc_lint_format fmt, bool color, dc_strbuf *out)
{
	switch (fmt) {
	case DC_LINT_JSON:
		return render_json(l, out);
	case DC_LINT_SARIF:
		return render_sarif(l, out);
	case DC_LINT_GITHUB:
		render_github(l, out);
		return dc_strbuf_error(out);
	case DC_LINT_HUMAN:
	default:
		render_human(l, color, out);
		return dc_strbuf_error(out);
	}
}
