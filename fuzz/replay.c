/* The replay main every fuzz target links into its `<name>_replay` binary:
 * runs LLVMFuzzerTestOneInput on each file named on the command line, so
 * the seed corpus doubles as a regression test and a crash found by
 * libFuzzer can be replayed under gdb or valgrind. Exits 1 if a file could
 * not be read. */
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	const char *me = argc > 0 ? basename(argv[0]) : "replay";
	int failed = 0;
	for (int i = 1; i < argc; i++) {
		char *buf;
		size_t len;
		int r = read_file_at(AT_FDCWD, argv[i], 64 << 20, &buf, &len);
		if (r < 0) {
			fprintf(stderr, "%s: %s: %s\n", me, argv[i], strerror(-r));
			failed = 1;
			continue;
		}
		LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
		free(buf);
	}
	printf("%s: ran %d input(s)\n", me, argc - 1);
	return failed;
}
