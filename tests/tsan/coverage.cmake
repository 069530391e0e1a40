cmake_minimum_required(VERSION 3.22)
# The ThreadSanitizer coverage check (run by ctest as tsan_coverage): every `#pragma omp parallel`
# (or _Pragma("omp parallel ...")) under kernels/, engine/, io/ and cli/ must sit in a file that
# tests/tsan/CMakeLists.txt lists for a driver, with the file's number of such directives. A new
# parallel region therefore fails CI until a driver runs it and the count is updated.
# Arguments: -DSOURCE_DIR=<repository root> -DCOVERED=<file=count,file=count,...>
if(NOT SOURCE_DIR OR NOT DEFINED COVERED)
  message(FATAL_ERROR "usage: cmake -DSOURCE_DIR=... -DCOVERED=file=count,... -P coverage.cmake")
endif()

string(REPLACE "," ";" covered_entries "${COVERED}")
set(covered_files "")
foreach(entry ${covered_entries})
  string(REGEX MATCH "^([^=]+)=([0-9]+)$" matched "${entry}")
  if(NOT matched)
    message(FATAL_ERROR "malformed coverage entry '${entry}' (expected path=count)")
  endif()
  if(DEFINED "expected_${CMAKE_MATCH_1}" AND NOT "${expected_${CMAKE_MATCH_1}}" EQUAL CMAKE_MATCH_2)
    message(FATAL_ERROR "${CMAKE_MATCH_1} is listed with ${expected_${CMAKE_MATCH_1}} and with "
                        "${CMAKE_MATCH_2} parallel regions: one count per file")
  endif()
  list(APPEND covered_files "${CMAKE_MATCH_1}")
  set("expected_${CMAKE_MATCH_1}" "${CMAKE_MATCH_2}")
endforeach()

file(GLOB_RECURSE sources RELATIVE "${SOURCE_DIR}"
     "${SOURCE_DIR}/kernels/*.[ch]" "${SOURCE_DIR}/engine/*.[ch]"
     "${SOURCE_DIR}/io/*.[ch]" "${SOURCE_DIR}/cli/*.[ch]")
list(SORT sources)
set(problems "")
set(regions 0)
set(files_with_regions "")
foreach(source ${sources})
  # Matched in the whole text rather than line by line: a directive continued with a trailing
  # backslash would escape the separator of a CMake list of lines and merge two entries.
  file(READ "${SOURCE_DIR}/${source}" text)
  string(REGEX MATCHALL "\n[ \t]*#[ \t]*pragma[ \t]+omp[ \t]+parallel" lines "\n${text}")
  string(REGEX MATCHALL "_Pragma[ \t]*\\([ \t]*\"omp[ \t]+parallel" operators "${text}")
  list(APPEND lines ${operators})
  list(LENGTH lines count)
  if(count EQUAL 0)
    continue()
  endif()
  math(EXPR regions "${regions} + ${count}")
  list(APPEND files_with_regions "${source}")
  if(NOT DEFINED "expected_${source}")
    string(APPEND problems "\n  ${source}: ${count} parallel region(s) but no TSan driver lists it")
  elseif(NOT count EQUAL "${expected_${source}}")
    string(APPEND problems "\n  ${source}: ${count} parallel region(s), but the drivers list "
                           "${expected_${source}} (a region was added or removed: extend a "
                           "driver, then update the count)")
  endif()
endforeach()
foreach(listed ${covered_files})
  if(NOT listed IN_LIST files_with_regions)
    string(APPEND problems "\n  ${listed}: listed for a TSan driver but has no parallel region")
  endif()
endforeach()

if(problems)
  message(FATAL_ERROR "OpenMP parallel regions without ThreadSanitizer coverage "
                      "(tests/tsan/CMakeLists.txt):${problems}")
endif()
list(LENGTH files_with_regions file_count)
message(STATUS "tsan coverage: ${regions} parallel regions in ${file_count} files, each file "
               "listed for a driver with its region count")
