/*
 * How libgmig gets between a program and the CUDA driver: it overrides
 * dlsym (a static cudart reaches libcuda only through dlopen, dlsym and
 * cuGetProcAddress) and maps every address the driver hands out for a
 * wrapped entry point to that exact variant's wrapper.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"

#define CUDA_LIB	"libcuda.so.1"

struct gmig_cuda_driver gmig_cu;

typedef void *(*dlsym_fn)(void *, const char *);

static dlsym_fn real_dlsym_fn;

#define ROW_C(name, pfn)		{ #name, (void *)w_##name, offsetof(struct gmig_cuda_driver, r_##name) },
#define ROW_G(name, pfn, params, args)	{ #name, (void *)w_##name, offsetof(struct gmig_cuda_driver, r_##name) },
static const struct gmig_cuda_wrap wraps[] = { GMIG_CUDA_WRAPS(ROW_C, ROW_G) };
#define NWRAPS	(sizeof(wraps) / sizeof(wraps[0]))

/* Real address -> wrapper, sorted by address for bsearch; filled once by resolve. */
static struct addr_row {
	uintptr_t real;
	void *wrapper;
} by_addr[NWRAPS];
static size_t nby_addr;

static pthread_mutex_t resolve_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool resolved;
static __thread bool resolving;		/* this thread is inside resolve: look-ups pass through */

/* glibc's own dlsym, found by version so that ours is skipped. */
/*
 * dlsym runs before a sanitizer runtime has set itself up (it resolves its
 * interceptors through dlsym at pre-init): what it calls then must not be
 * instrumented, which would touch shadow memory that does not exist yet.
 */
#define EARLY	__attribute__((no_sanitize("address", "undefined")))

EARLY static dlsym_fn real_dlsym(void)
{
	dlsym_fn f = __atomic_load_n(&real_dlsym_fn, __ATOMIC_ACQUIRE);

	if (f)
		return f;
	f = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
	if (!f)
		f = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
	__atomic_store_n(&real_dlsym_fn, f, __ATOMIC_RELEASE);
	return f;
}

bool gmig_cuda_disabled(void)
{
	static int disabled = -1;	/* a race here only computes the same answer twice */

	if (disabled < 0) {
		const char *v = getenv("GMIG_DISABLE");

		disabled = v && !strcmp(v, "1");
	}
	return disabled;
}

static int by_real(const void *a, const void *b)
{
	uintptr_t x = ((const struct addr_row *)a)->real, y = ((const struct addr_row *)b)->real;

	return x < y ? -1 : x > y;
}

static void resolve_locked(void *h)
{
	dlsym_fn sym = real_dlsym();
	PFN_cuGetProcAddress_v12000 gpa;

	for (size_t i = 0; i < NWRAPS; i++) {
		void *p = sym(h, wraps[i].name);

		*(void **)((char *)&gmig_cu + wraps[i].slot) = p;
		if (p)
			by_addr[nby_addr++] = (struct addr_row){ (uintptr_t)p, wraps[i].wrapper };
	}
	qsort(by_addr, nby_addr, sizeof(by_addr[0]), by_real);
#define USE(name, pfn)	gmig_cu.r_##name = (pfn)sym(h, #name);
	GMIG_CUDA_USES(USE)
	/* The checkpoint API is asked for by version, as a program would: absent before 12.8. */
	gpa = gmig_cu.r_cuGetProcAddress_v2;
#define CKPT(name, pfn)								\
	if (gpa && gpa(#name, (void **)&gmig_cu.r_##name, 12080, CU_GET_PROC_ADDRESS_DEFAULT,	\
		       NULL) != CUDA_SUCCESS)					\
		gmig_cu.r_##name = NULL;
	GMIG_CUDA_CKPT(CKPT)
}

bool gmig_cuda_resolve(void)
{
	void *h;

	if (atomic_load_explicit(&resolved, memory_order_acquire))
		return true;
	if (resolving)
		return false;
	pthread_mutex_lock(&resolve_lock);
	if (!atomic_load_explicit(&resolved, memory_order_relaxed)) {
		resolving = true;
		/* Only a driver the program loaded: libgmig never loads one itself. */
		h = dlopen(CUDA_LIB, RTLD_NOW | RTLD_NOLOAD);
		if (h) {
			resolve_locked(h);
			atomic_store_explicit(&resolved, true, memory_order_release);
			/* The program's own handle keeps libcuda loaded. */
			dlclose(h);
		}
		resolving = false;
	}
	pthread_mutex_unlock(&resolve_lock);
	return atomic_load_explicit(&resolved, memory_order_acquire);
}

void *gmig_cuda_wrapper_for(void *p)
{
	struct addr_row key = { (uintptr_t)p, NULL }, *row;

	if (!p || !gmig_cuda_resolve())
		return p;
	row = bsearch(&key, by_addr, nby_addr, sizeof(by_addr[0]), by_real);
	return row ? row->wrapper : p;
}

const char *gmig_cuda_err(CUresult r)
{
	const char *s = NULL;

	if (gmig_cu.r_cuGetErrorName && gmig_cu.r_cuGetErrorName(r, &s) == CUDA_SUCCESS && s)
		return s;
	return "CUDA_ERROR_?";
}

/*
 * dlsym(RTLD_NEXT, name) as the caller would have got it: the first object
 * after the caller's, in load order, that defines name itself.
 */
/*
 * The public head of glibc's struct link_map (<link.h>, which libgmig's own
 * link.h shadows on this include path); the layout is the r_debug ABI.
 */
struct lmap {
	uintptr_t l_addr;
	char *l_name;
	void *l_ld;
	struct lmap *l_next, *l_prev;
};

static void *next_after(const void *caller, const char *name)
{
	struct lmap *me = NULL, *l;
	Dl_info info;
	dlsym_fn sym = real_dlsym();

	if (!dladdr1(caller, &info, (void **)&me, RTLD_DL_LINKMAP) || !me)
		return sym(RTLD_NEXT, name);
	for (l = me->l_next; l; l = l->l_next) {
		struct lmap *owner = NULL;
		void *h = dlopen(l->l_name, RTLD_LAZY | RTLD_NOLOAD), *p;

		if (!h)
			continue;
		p = sym(h, name);
		dlclose(h);
		/* The handle also searches the object's dependencies: keep only its own definition. */
		if (p && dladdr1(p, &info, (void **)&owner, RTLD_DL_LINKMAP) && owner == l)
			return p;
	}
	return NULL;
}

/* A driver entry point name: "cu" and a capital, never a prefix match on cublas, cudnn, cuda... */
EARLY static bool driver_name(const char *name)
{
	return name && name[0] == 'c' && name[1] == 'u' && name[2] >= 'A' && name[2] <= 'Z';
}

/* The C halves of dlsym, called from its assembly stub below only. */
void *gmig_dlsym_handle(void *handle, const char *name) GMIG_HIDDEN;
void *gmig_dlsym_next(void *handle, const char *name, const void *caller) GMIG_HIDDEN;
dlsym_fn gmig_dlsym_plain(const char *name) GMIG_HIDDEN;

static void *wrap_found(const char *name, void *p)
{
	if (!driver_name(name) || gmig_cuda_disabled())
		return p;
	return gmig_cuda_wrapper_for(p);
}

/* dlsym(handle, name) for a handle that is not RTLD_NEXT. */
__attribute__((used)) GMIG_HIDDEN void *gmig_dlsym_handle(void *handle, const char *name)
{
	return wrap_found(name, real_dlsym()(handle, name));
}

/* dlsym(RTLD_NEXT, name) for a driver entry point, as the caller would have got it. */
__attribute__((used)) GMIG_HIDDEN void *gmig_dlsym_next(void *handle, const char *name, const void *caller)
{
	(void)handle;
	return wrap_found(name, next_after(caller, name));
}

/* glibc's dlsym, when dlsym(RTLD_NEXT, name) needs nothing of libgmig: name is no driver entry point. */
EARLY __attribute__((used)) GMIG_HIDDEN dlsym_fn gmig_dlsym_plain(const char *name)
{
	return driver_name(name) ? NULL : real_dlsym();
}

#if defined(__x86_64__)
/*
 * dlsym itself. RTLD_NEXT means "after the caller", which glibc reads from
 * its own return address: for names libgmig does not wrap, the stub jumps to
 * glibc's dlsym with the caller's return address still on the stack, so the
 * answer is exactly glibc's (sanitizer runtimes resolve their interceptors
 * this way at pre-init, before any libgmig code could run safely).
 */
__asm__(
	"	.text\n"
	"	.globl dlsym\n"
	"	.type dlsym, @function\n"
	"dlsym:\n"
	"	cmpq $-1, %rdi\n"
	"	jne gmig_dlsym_handle\n"
	"	pushq %rdi\n"
	"	pushq %rsi\n"
	"	subq $8, %rsp\n"
	"	movq %rsi, %rdi\n"
	"	call gmig_dlsym_plain\n"
	"	addq $8, %rsp\n"
	"	popq %rsi\n"
	"	popq %rdi\n"
	"	testq %rax, %rax\n"
	"	jz 1f\n"
	"	jmpq *%rax\n"
	"1:	movq (%rsp), %rdx\n"
	"	jmp gmig_dlsym_next\n"
	"	.size dlsym, .-dlsym\n");
#else
__attribute__((visibility("default"))) void *dlsym(void *handle, const char *name)
{
	if (handle == RTLD_NEXT)
		return gmig_dlsym_next(handle, name, __builtin_return_address(0));
	return gmig_dlsym_handle(handle, name);
}
#endif
