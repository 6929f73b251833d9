/* A small shared library for mm_filemap.c: code, read-only data and data. */
static const char table[] = "mm library data";
int mmtest_counter = 3;
int mmtest_triple(int x) { return x * mmtest_counter + (table[0] == 'm' ? 0 : 1000); }
