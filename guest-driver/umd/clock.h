/* Monotonic time for libgmig's deadlines: condition variables, deadlines, intervals. */
#ifndef GMIG_UMD_CLOCK_H
#define GMIG_UMD_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* pthread_cond_init on CLOCK_MONOTONIC; negative errno. */
int gmig_cond_init_monotonic(pthread_cond_t *cond);
/* now + ms on CLOCK_MONOTONIC. */
struct timespec gmig_deadline_ms(uint32_t ms);
/* Milliseconds from now until deadline, 0 if it has passed, rounded up. */
int gmig_ms_until(const struct timespec *deadline);
uint64_t gmig_now_us(void);

#endif
