/* The installed header alone must compile cleanly as C99 (tests/packaging/run.sh). */
#include <fraiseql_wire.h>

int main(void) {
    enum fw_status s = FW_OK;
    return fw_version() == NULL || s != FW_OK;
}
