// gen_phones.cc - writes phones.tsv: libphonenumber's own example numbers
// (the metadata's exampleNumber for mobile and fixed-line numbers of every
// region it knows), each in the E.164, international and national formats.
//
//   g++ -std=c++17 -o /tmp/gen_phones tests/data/pii-corpus/gen_phones.cc -lphonenumber
//   /tmp/gen_phones > tests/data/pii-corpus/phones.tsv
#include <phonenumbers/phonenumberutil.h>

#include <iostream>
#include <set>
#include <string>

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

int main()
{
    const PhoneNumberUtil *u = PhoneNumberUtil::GetInstance();
    std::set<std::string> regions;
    u->GetSupportedRegions(&regions);
    std::cout << "# region\ttype\tformat\tnumber (libphonenumber " << "example numbers)\n";
    const struct {
        PhoneNumberUtil::PhoneNumberType type;
        const char *name;
    } types[] = {{PhoneNumberUtil::MOBILE, "mobile"}, {PhoneNumberUtil::FIXED_LINE, "fixed"}};
    const struct {
        PhoneNumberUtil::PhoneNumberFormat fmt;
        const char *name;
    } formats[] = {{PhoneNumberUtil::E164, "e164"},
                   {PhoneNumberUtil::INTERNATIONAL, "international"},
                   {PhoneNumberUtil::NATIONAL, "national"}};
    for (const std::string &r : regions)
        for (const auto &t : types) {
            PhoneNumber n;
            if (!u->GetExampleNumberForType(r, t.type, &n))
                continue;
            for (const auto &f : formats) {
                std::string out;
                u->Format(n, f.fmt, &out);
                std::cout << r << '\t' << t.name << '\t' << f.name << '\t' << out << '\n';
            }
        }
    return 0;
}
