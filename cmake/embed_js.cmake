# Build step (cmake -P): minify web/sg.js with uglifyjs and write it as a C array, so that the
# binary serves exactly one reviewed script with no file to find at run time.
#   -DUGLIFYJS=path -DIN=web/sg.js -DMIN=out/sg.min.js -DOUT=out/sg_js.c
execute_process(COMMAND "${UGLIFYJS}" "${IN}" --compress --mangle --output "${MIN}"
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "uglifyjs failed on ${IN}: ${err}")
endif()
file(READ "${MIN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR size "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n    " bytes "${bytes}")
file(WRITE "${OUT}" "/* Generated from web/sg.js by cmake/embed_js.cmake; do not edit. */\n"
     "#include <stddef.h>\n"
     "const unsigned char sg_snippet_js[] = {\n    ${bytes}\n};\n"
     "const size_t sg_snippet_js_len = ${size};\n")
