/* kseg: customer segmentation engine. The umbrella header; include this or the individual ones. */
#ifndef KSEG_KSEG_H
#define KSEG_KSEG_H

#include "kseg/export.h"

#include "kseg/version.h"
#include "kseg/error.h"
#include "kseg/matrix.h"
#include "kseg/comm.h"
#include "kseg/kmeans.h"
#include "kseg/checkpoint.h"
#include "kseg/generate.h"
#include "kseg/transactions.h"
#include "kseg/rfm.h"
#include "kseg/io.h"
#include "kseg/output.h"
#include "kseg/memory.h"
#include "kseg/import.h"
#include "kseg/prepare.h"
#include "kseg/metrics.h"
#include "kseg/segment.h"
#include "kseg/pipeline.h"
#include "kseg/config.h"

#endif
