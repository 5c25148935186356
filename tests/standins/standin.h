/*
 * Shared bits of Brine's stand-in programs (tests/standins/): test doubles for
 * Kubernetes components that cannot be had on the test machine. Each answers its
 * version like the real tool and refuses everything else, saying it is a stand-in.
 *
 * Built by tests/mirror (gcc -static -O2 -s) with the versions passed as -D macros.
 */
#ifndef BRINE_STANDIN_H
#define BRINE_STANDIN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef GIT_VERSION
#error "build with -DGIT_VERSION=\"v1.37.2\""
#endif
#ifndef GIT_COMMIT
#define GIT_COMMIT "0000000000000000000000000000000000000000"
#endif
#ifndef BUILD_DATE
#define BUILD_DATE "1970-01-01T00:00:00Z"
#endif
#ifndef GO_VERSION
#define GO_VERSION "go1.25.0"
#endif

/* "1" and "37" out of "v1.37.2". */
static inline void standin_major_minor(char *major, char *minor, size_t size) {
    unsigned int maj = 0, min = 0;
    sscanf(GIT_VERSION, "v%u.%u", &maj, &min);
    snprintf(major, size, "%u", maj);
    snprintf(minor, size, "%u", min);
}

/* The Go struct print of k8s.io/apimachinery version.Info, as `kubeadm version` shows it. */
static inline void standin_print_info_struct(void) {
    char major[16], minor[16];
    standin_major_minor(major, minor, sizeof major);
    printf("&version.Info{Major:\"%s\", Minor:\"%s\", EmulationMajor:\"\", EmulationMinor:\"\", "
           "MinCompatibilityMajor:\"\", MinCompatibilityMinor:\"\", GitVersion:\"%s\", GitCommit:\"%s\", "
           "GitTreeState:\"clean\", BuildDate:\"%s\", GoVersion:\"%s\", Compiler:\"gc\", Platform:\"linux/amd64\"}",
           major, minor, GIT_VERSION, GIT_COMMIT, BUILD_DATE, GO_VERSION);
}

/* version.Info as JSON (indent is the indentation of its fields) or YAML. */
static inline void standin_print_info_json(const char *indent, const char *closing_indent) {
    char major[16], minor[16];
    standin_major_minor(major, minor, sizeof major);
    printf("{\n"
           "%s\"major\": \"%s\",\n%s\"minor\": \"%s\",\n%s\"gitVersion\": \"%s\",\n%s\"gitCommit\": \"%s\",\n"
           "%s\"gitTreeState\": \"clean\",\n%s\"buildDate\": \"%s\",\n%s\"goVersion\": \"%s\",\n"
           "%s\"compiler\": \"gc\",\n%s\"platform\": \"linux/amd64\"\n%s}",
           indent, major, indent, minor, indent, GIT_VERSION, indent, GIT_COMMIT, indent, indent, BUILD_DATE,
           indent, GO_VERSION, indent, indent, closing_indent);
}

static inline void standin_print_info_yaml(const char *indent) {
    char major[16], minor[16];
    standin_major_minor(major, minor, sizeof major);
    printf("%sbuildDate: \"%s\"\n%scompiler: gc\n%sgitCommit: \"%s\"\n%sgitTreeState: clean\n%sgitVersion: %s\n"
           "%sgoVersion: %s\n%smajor: \"%s\"\n%sminor: \"%s\"\n%splatform: linux/amd64\n",
           indent, BUILD_DATE, indent, indent, GIT_COMMIT, indent, indent, GIT_VERSION, indent, GO_VERSION,
           indent, major, indent, minor, indent);
}

/* The value of -o/--output in argv (forms: -o X, -o=X, -oX, --output X, --output=X), or NULL. */
static inline const char *standin_output_flag(int argc, char **argv) {
    for (int i = 1; i < argc; ++i) {
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc)
            return argv[i + 1];
        if (!strncmp(argv[i], "--output=", 9))
            return argv[i] + 9;
        if (!strncmp(argv[i], "-o=", 3))
            return argv[i] + 3;
        if (!strncmp(argv[i], "-o", 2) && argv[i][2] != '\0')
            return argv[i] + 2;
    }
    return NULL;
}

static inline int standin_has_flag(int argc, char **argv, const char *flag) {
    size_t length = strlen(flag);
    for (int i = 1; i < argc; ++i)
        if (!strcmp(argv[i], flag) || (!strncmp(argv[i], flag, length) && argv[i][length] == '='))
            return 1;
    return 0;
}

/* Anything a stand-in does not implement: say so, exit non-zero. */
static inline int standin_refuse(const char *tool, int argc, char **argv) {
    fprintf(stderr, "%s %s is a Brine stand-in (tests/standins): only its version is implemented, not:", tool,
            GIT_VERSION);
    for (int i = 1; i < argc; ++i)
        fprintf(stderr, " %s", argv[i]);
    fprintf(stderr, "%s\n", argc > 1 ? "" : " (no arguments)");
    return 64;
}

#endif
