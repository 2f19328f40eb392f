// Parses every operator schema that anneal_ops.cpp's TORCH_LIBRARY(anneal, m) block defines with
// libtorch's own schema parser, on a machine without a GPU (tools/gpu/compile-check.sh builds and
// runs it). A schema the parser refuses compiles with g++ and with the TorchScript stand-ins
// (FusedLayerSourceTest maps "Tensor[] x=[]" to a TorchScript default it takes), then aborts the
// library's load on the GPU machine: one such schema cost a whole GPU call (stop 42).
//
//   schema_check anneal_ops.cpp     prints "N schemas" when all parse, else each refused one with its line
//
// Exit 0: all parse. 2: one does not (file:line, the schema and the parser's message). 3: no block.
#include <torch/csrc/jit/frontend/function_schema_parser.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

namespace {

// The string literals of one statement, concatenated as the compiler does (a backslash takes the
// character after it as itself, so \" stays inside the literal; \n would read as n: schemas hold none).
std::string literals(const std::string& statement) {
  std::string out;
  bool inside = false;
  for (size_t i = 0; i < statement.size(); ++i) {
    char c = statement[i];
    if (c == '"') {
      inside = !inside;
    } else if (inside) {
      if (c == '\\' && i + 1 < statement.size()) out += statement[++i];
      else out += c;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: schema_check anneal_ops.cpp\n";
    return 3;
  }
  std::ifstream in(argv[1]);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string source = buffer.str();
  const std::string opening = "TORCH_LIBRARY(anneal, m) {";
  size_t begin = source.find(opening);
  if (begin == std::string::npos) {
    std::cerr << argv[1] << ": no '" << opening << "' block\n";
    return 3;
  }
  size_t end = source.find("\n}\n", begin);
  int parsed = 0, refused = 0;
  size_t at = begin;
  while (true) {
    size_t def = source.find("m.def(", at);
    if (def == std::string::npos || def > end) break;
    size_t close = source.find(';', def);
    std::string schema = literals(source.substr(def, close - def));
    long line = 1 + std::count(source.begin(), source.begin() + static_cast<long>(def), '\n');
    try {
      torch::jit::parseSchema(schema);
      ++parsed;
    } catch (const std::exception& e) {
      ++refused;
      std::cout << argv[1] << ":" << line << ": libtorch's parser refuses the schema\n  " << schema << "\n"
                << e.what() << "\n";
    }
    at = close;
  }
  if (parsed + refused == 0) {
    std::cerr << argv[1] << ": no m.def( in the TORCH_LIBRARY(anneal, m) block\n";
    return 3;
  }
  if (refused > 0) return 2;
  std::cout << parsed << " schemas\n";
  return 0;
}
