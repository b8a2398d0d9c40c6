// The SQLite C API, from the system's libsqlite3-dev (Debian: 3.40.1).
#include <sqlite3.h>
