/* JSON string output shared by the C probes the tests run inside jails (jail_probe.c,
 * tests/security/escape_probe.c): quotes and backslashes escaped, everything outside
 * printable ASCII as \u00XX, so a report is always one valid JSON line. */
#ifndef STOCKADE_JSON_STRING_H
#define STOCKADE_JSON_STRING_H

#include <stdio.h>

static void json_string_to(FILE *out, const char *s) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

#endif
