// The installed header alone must compile cleanly as C++17 (tests/packaging/run.sh).
#include <fraiseql_wire.h>

int main() {
    fw_status s = FW_OK;
    return fw_version() == nullptr || s != FW_OK;
}
