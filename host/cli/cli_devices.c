/* xmargin devices: list every device, and which one --device auto takes. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void xm_cli_mib(char *buf, size_t cap, uint64_t bytes) {
  if (bytes >= (1ull << 30))
    snprintf(buf, cap, "%.1f GiB", (double)bytes / (double)(1ull << 30));
  else if (bytes >= (1ull << 20))
    snprintf(buf, cap, "%.1f MiB", (double)bytes / (double)(1ull << 20));
  else
    snprintf(buf, cap, "%.0f KiB", (double)bytes / 1024.0);
}

int xm_cli_devices(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: xmargin devices [--device SPEC]\n\n"
             "Lists the OpenCL devices of every platform and the plain-C cpu backend,\n"
             "with what --device (or XM_DEVICE) takes to select each, and says which\n"
             "one SPEC (default: auto) selects.\n");
      return XM_EXIT_OK;
    }
  }
  const char *want = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
      want = argv[++i];
    else if (strncmp(argv[i], "--device=", 9) == 0)
      want = argv[i] + 9;
    else {
      fprintf(stderr, "xmargin devices: unknown argument '%s'\n", argv[i]);
      return XM_EXIT_USAGE;
    }
  }
  xm_device_info *list = NULL;
  size_t n = 0;
  xm_status st = xm_devices_list(&list, &n);
  if (st != XM_OK) {
    fprintf(stderr, "xmargin devices: %s\n", xm_strerror(st));
    return xm_cli_exit_status(st);
  }
  for (size_t i = 0; i < n; i++) {
    const xm_device_info *d = &list[i];
    char g[32], l[32], m[32];
    xm_cli_mib(g, sizeof g, d->global_mem);
    xm_cli_mib(l, sizeof l, d->local_mem);
    xm_cli_mib(m, sizeof m, d->max_alloc);
    printf("%-12s %s\n", d->spec, d->name);
    printf("             platform: %s   vendor: %s   type: %s\n", d->platform, d->vendor,
           d->backend == XM_BACKEND_CPU ? "cpu backend" : (d->is_gpu ? "GPU" : "OpenCL CPU/other"));
    printf("             %s   driver %s   compute units: %u   fp64: %s\n", d->version, d->driver,
           d->compute_units, d->fp64 ? "yes" : "no");
    printf("             global memory: %s   local memory: %s   max allocation: %s\n", g, l, m);
  }
  xm_devices_free(list);
  if (!xm_has_opencl())
    printf("(this xmargin was built without OpenCL: XM_WITH_OPENCL=OFF)\n");
  xm_options opt;
  xm_options_default(&opt);
  opt.device = want;
  xm_options_from_env(&opt);
  xm_ctx *ctx = NULL;
  st = xm_ctx_create(&ctx, &opt);
  if (st == XM_OK)
    printf("\n%s: %s\n", want ? want : "auto", xm_ctx_choice(ctx));
  else
    fprintf(stderr, "\nxmargin devices: %s cannot be used: %s: %s\n", want ? want : "auto",
            xm_strerror(st), xm_ctx_last_error(ctx));
  xm_ctx_destroy(ctx);
  return xm_cli_exit_status(st);
}
