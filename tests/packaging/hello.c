/* Smallest program using an installed fraiseql-wire: built by tests/packaging/run.sh with
 * pkg-config (shared and static) and with CMake (tests/packaging/cmake). Needs no server.
 * Prints the run-time version on success. */
#include <fraiseql_wire.h>

#include <stdio.h>
#include <string.h>

#define STR2(x) #x
#define STR(x) STR2(x)

int main(void) {
    const char *v = fw_version();
    const char *ok = fw_status_str(FW_OK);
    const char *unknown = fw_status_str(12345);
    int failed = 0;

    if (v == NULL || strcmp(v, FW_VERSION_STRING) != 0) {
        fprintf(stderr, "hello: fw_version() = \"%s\", FW_VERSION_STRING = \"%s\"\n",
                v ? v : "(null)", FW_VERSION_STRING);
        failed = 1;
    }
    if (strcmp(FW_VERSION_STRING,
               STR(FW_VERSION_MAJOR) "." STR(FW_VERSION_MINOR) "." STR(FW_VERSION_PATCH)) != 0) {
        fprintf(stderr, "hello: FW_VERSION_STRING \"%s\" is not MAJOR.MINOR.PATCH %d.%d.%d\n",
                FW_VERSION_STRING, FW_VERSION_MAJOR, FW_VERSION_MINOR, FW_VERSION_PATCH);
        failed = 1;
    }
    if (ok == NULL || ok[0] == '\0' || unknown == NULL || unknown[0] == '\0') {
        fprintf(stderr, "hello: fw_status_str gave an empty string or NULL\n");
        failed = 1;
    }
    if (failed) {
        return 1;
    }
    printf("%s\n", v);
    return 0;
}
