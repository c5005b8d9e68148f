# Writes a C++ source file that defines `std::string_view NAMESPACE::FUNCTION()` returning the
# bytes of INPUT, so that a file of the source tree (docs/openapi.json) is part of the binary.
#
#   cmake -DINPUT=in.json -DOUTPUT=out.cc -DHEADER=server/openapi.h
#         -DNAMESPACE=keygate::server -DFUNCTION=OpenApiDocument -P embed_file.cmake
#
# The bytes are written as a hex array, so no content can end a string literal early.
foreach(var INPUT OUTPUT HEADER NAMESPACE FUNCTION)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed_file.cmake: -D${var}=... is required")
  endif()
endforeach()

file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR byte_count "${hex_length} / 2")
# Each byte as "0x..,", 16 to a line (CMake's regex has no {n}, hence string(REPEAT)).
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REPEAT "0x[0-9a-f][0-9a-f]," 16 line_pattern)
string(REGEX REPLACE "(${line_pattern})" "\\1\n    " bytes "${bytes}")
get_filename_component(input_name "${INPUT}" NAME)

file(WRITE "${OUTPUT}"
"// Generated from ${input_name} by cmake/embed_file.cmake at build time. Do not edit.
#include \"${HEADER}\"

namespace ${NAMESPACE} {
namespace {

constexpr unsigned char kBytes[] = {
    ${bytes}0x00};

}  // namespace

std::string_view ${FUNCTION}() {
  return std::string_view(reinterpret_cast<const char*>(kBytes), ${byte_count});
}

}  // namespace ${NAMESPACE}
")
