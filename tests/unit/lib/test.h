/* test.h: what every kit unit test includes: cmocka in the order it needs. */
#ifndef SOUK_TEST_H
#define SOUK_TEST_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#endif
