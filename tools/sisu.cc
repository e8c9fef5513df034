// The `sisu` command line tool. Its syntax is fixed by the contract ("The `sisu` tool"):
// inspect, verify and dump read index files and databases; get, put and remove edit a database.
// Those subcommands arrive with the index-file and engine work; this build knows none of them
// and says so, rather than pretending. Usage errors exit 2 with a one-line hint.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  CLI::App app{"sisu: inspect, verify and dump sisu index files and databases"};
  app.name("sisu");
  app.set_version_flag("--version", std::string("sisu ") + SISU_VERSION);
  app.footer(
      "Commands (inspect, verify, dump, get, put, remove) are added as the index-file format "
      "and the engine land; this build has none yet.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "sisu: %s (try 'sisu --help')\n", e.what());
    return 2;
  }
  std::fprintf(stderr, "sisu: no command given (try 'sisu --help')\n");
  return 2;
}
